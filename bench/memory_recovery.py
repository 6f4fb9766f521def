"""Worker memory with many table keys, and table recovery time after a restart.

    .venv/bin/python bench/memory_recovery.py --keys 1000000 --runs 3

Writes one ``ViewRecorded`` per distinct message id, so the worker stores
``--keys`` entries in its per-message view table. Then it measures, each
``--runs`` times:

* the worker's resident set size (VmRSS) once the consumer lag is zero;
* the time from starting a restarted worker to its first correct read of a
  key, with its local RocksDB data kept (a normal restart) and with the data
  folder wiped (recovery from the changelog topics alone).

The baseline is the RSS of an idle worker of the same code with empty tables.
With ``--profile FILE`` py-spy samples the worker while it recovers from the
changelog topics alone, and the functions seen most often are printed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.events import MICROS_PER_DAY, make_event, now_micros  # noqa: E402
from app.lag import wait_for_zero_lag  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import (  # noqa: E402
    Record,
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
    table_dir,
    wait_healthy,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def view_records(count: int) -> tuple[list[Record], str]:
    today = now_micros() // MICROS_PER_DAY * MICROS_PER_DAY
    records = []
    last = ""
    for index in range(count):
        message_id = str(uuid.uuid4())
        event = make_event(
            "ViewRecorded",
            message_id=message_id,
            user=f"u{index % 997}",
            occurred_at=today + index,
            started_at=today + index,
            duration_ms=1000 + index % 1000,
        )
        records.append(Record("views", message_id.encode(), event.to_json()))
        last = message_id
    return records, last


def read_views(settings: Settings, message_id: str) -> int | None:
    url = f"{settings.api_url}/stats/messages/{message_id}/views"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(json.load(response)["views"])
    except OSError:
        return None


def time_to_first_read(
    settings: Settings, message_id: str, log: Path, profile: Path | None = None
) -> float:
    started = time.perf_counter()
    worker = start_worker(settings, log, log_level="INFO")
    sampler = start_sampler(worker.pid, profile) if profile is not None else None
    try:
        while time.perf_counter() - started < 600:
            if read_views(settings, message_id) == 1:
                return time.perf_counter() - started
            time.sleep(0.2)
        raise TimeoutError("restarted worker never served the key")
    finally:
        stop_sampler(sampler)
        worker.terminate()
        worker.wait(timeout=60)


def one_run(keys: int, profile: Path | None = None) -> dict[str, float]:
    settings = isolated_settings("memory", SOCIALSTREAM_API_PORT=str(free_port()))
    log = settings.log_dir / f"bench-{settings.app_id}.log"
    datadir = table_dir(settings)
    records, last_id = view_records(keys)

    worker = start_worker(settings, log)
    try:
        wait_healthy(settings.api_url)
        idle_mb = rss_mb(worker.pid)
        asyncio.run(produce(settings, records))
        asyncio.run(wait_for_zero_lag(settings, timeout_s=1800, poll_s=1.0))
        loaded_mb = rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    warm_s = time_to_first_read(settings, last_id, log)
    shutil.rmtree(datadir)
    cold_s = time_to_first_read(settings, last_id, log, profile)
    asyncio.run(remove_deployment(settings))
    return {
        "idle_mb": idle_mb,
        "loaded_mb": loaded_mb,
        "warm_s": warm_s,
        "cold_s": cold_s,
    }


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--keys", type=int, default=1_000_000, help="distinct keys in the view table"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the recovery from the changelogs with py-spy into this file",
    )
    args = parser.parse_args()

    runs = []
    for run in range(args.runs):
        result = one_run(args.keys, args.profile)
        runs.append(result)
        print(
            f"run {run + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in result.items()),
            flush=True,
        )
    rows = [
        ("distinct keys per table", f"{args.keys:,}"),
        ("idle worker RSS, median MB", f"{median([r['idle_mb'] for r in runs]):.0f}"),
        (
            "loaded worker RSS, median MB",
            f"{median([r['loaded_mb'] for r in runs]):.0f}",
        ),
        (
            "restart with local RocksDB to first read, median s",
            f"{median([r['warm_s'] for r in runs]):.1f}",
        ),
        (
            "restart from changelog only to first read, median s",
            f"{median([r['cold_s'] for r in runs]):.1f}",
        ),
    ]
    for name, value in rows:
        print(f"{name}: {value}")
    if args.profile is not None:
        print("\n".join(summarize_profile(args.profile)), flush=True)
    if not args.no_record:
        command = (
            f"python bench/memory_recovery.py --keys {args.keys} --runs {args.runs}"
        )
        append_result("Memory and recovery", command, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
