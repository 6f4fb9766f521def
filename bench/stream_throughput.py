"""Stream throughput of one worker against a bare aiokafka loop, in one run.

    .venv/bin/python bench/stream_throughput.py --events 200000 --runs 3

Each run writes the benchmark mix (messages 5 %, likes 25 %, views 70 %, one
Kafka record per event) to fresh topics while a worker that is already up
(and has processed a warm-up of 2,000 events) consumes them, and times the
span from the first send to zero consumer lag on every topic the worker
reads, the rollup topics included. The baseline then reads the same records
with a bare aiokafka consumer that decodes the JSON and counts per message,
user and day in dicts: the limit for Python on this machine. With ``--quix``
the same counting runs in Quix Streams with a RocksDB state and changelog
(install with ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.lag import wait_for_zero_lag  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import (  # noqa: E402
    append_result,
    bench_parser,
    free_port,
    isolated_settings,
    median,
    produce,
    remove_deployment,
    start_sampler,
    start_worker,
    stop_sampler,
    summarize_profile,
    wait_healthy,
    workload,
)

WARMUP_EVENTS = 2_000


def quix_run(settings: Settings, count: int) -> float:
    """Run the Quix Streams baseline on the same topics; return events per second."""
    import tempfile

    script = str(Path(__file__).resolve().parent / "quix_baseline.py")
    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        result = subprocess.run(
            [sys.executable, script, settings.topic_prefix, str(count), state_dir],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"the Quix Streams baseline failed with exit code {result.returncode}:\n"
            + "\n".join(result.stderr.strip().splitlines()[-10:])
        )
    return float(result.stdout.strip().splitlines()[-1])


async def worker_run(
    count: int, quix: bool = False, profile: Path | None = None
) -> float:
    port = free_port()
    settings = isolated_settings("worker", SOCIALSTREAM_API_PORT=str(port))
    log = settings.log_dir / f"bench-{settings.app_id}.log"
    from app.cli import create_event_topics

    await create_event_topics(settings)
    worker = start_worker(settings, log)
    sampler = None
    try:
        await asyncio.to_thread(wait_healthy, settings.api_url)
        # The worker joins its group and opens its tables after /health
        # responds, so a small warm-up load keeps that start-up out of the timing.
        await produce(settings, list(workload(WARMUP_EVENTS, seed=2)))
        await wait_for_zero_lag(settings, timeout_s=300, poll_s=0.25)
        records = list(workload(count))
        if profile is not None:
            sampler = start_sampler(worker.pid, profile)
        started = time.perf_counter()
        await produce(settings, records)
        await wait_for_zero_lag(settings, timeout_s=1800, poll_s=0.25)
        elapsed = time.perf_counter() - started
    finally:
        stop_sampler(sampler)
        worker.terminate()
        worker.wait(timeout=60)
    await bare_loop_run(settings, count)
    if quix:
        QUIX_RATES.append(await asyncio.to_thread(quix_run, settings, count))
    await remove_deployment(settings)
    return count / elapsed


async def bare_loop_run(settings: Settings, count: int) -> float:
    """Count the topics' records with a bare consumer; return events per second."""
    consumer = AIOKafkaConsumer(
        settings.topic("messages"),
        settings.topic("likes"),
        settings.topic("views"),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=52_428_800,
    )
    per_message: Counter[str] = Counter()
    per_user_day: Counter[tuple[str, str]] = Counter()
    per_day: Counter[str] = Counter()
    seen = 0
    await consumer.start()
    started = time.perf_counter()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    day = event["occurred_at"][:10]
                    per_message[event["message_id"]] += 1
                    per_user_day[(event["user"], day)] += 1
                    per_day[day] += 1
                    seen += 1
    finally:
        elapsed = time.perf_counter() - started
        await consumer.stop()
    BARE_RATES.append(seen / elapsed)
    return seen / elapsed


BARE_RATES: list[float] = []
QUIX_RATES: list[float] = []


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--events", type=int, default=200_000, help="events in each timed run"
    )
    parser.add_argument(
        "--quix",
        action="store_true",
        help="also run the Quix Streams baseline (bench extra)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the worker with py-spy during each run into this "
        "collapsed-stack file (overwritten per run) and print a summary",
    )
    args = parser.parse_args()
    if args.quix and importlib.util.find_spec("quixstreams") is None:
        raise SystemExit("--quix needs Quix Streams: run make bench first")

    worker_rates = []
    for run in range(args.runs):
        rate = asyncio.run(worker_run(args.events, args.quix, args.profile))
        if args.profile is not None:
            print("\n".join(summarize_profile(args.profile)), flush=True)
        worker_rates.append(rate)
        quix_text = f", quix {QUIX_RATES[-1]:,.0f} events/s" if QUIX_RATES else ""
        print(
            f"run {run + 1}: worker {rate:,.0f} events/s, "
            f"bare loop {BARE_RATES[-1]:,.0f} events/s{quix_text}",
            flush=True,
        )
    worker, bare = median(worker_rates), median(BARE_RATES)
    rows = [
        ("events per run", f"{args.events:,}"),
        ("worker, median events/s", f"{worker:,.0f}"),
        ("bare aiokafka loop, median events/s", f"{bare:,.0f}"),
        ("worker / bare loop", f"{worker / bare:.3f}"),
        ("runs (worker events/s)", ", ".join(f"{r:,.0f}" for r in worker_rates)),
    ]
    if QUIX_RATES:
        quix = median(QUIX_RATES)
        rows += [
            ("Quix Streams with RocksDB state, median events/s", f"{quix:,.0f}"),
            ("worker / Quix Streams", f"{worker / quix:.3f}"),
        ]
    for name, value in rows:
        print(f"{name}: {value}")
    if not args.no_record:
        command = (
            f"python bench/stream_throughput.py --events {args.events} "
            f"--runs {args.runs}" + (" --quix" if args.quix else "")
        )
        append_result("Stream throughput", command, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
