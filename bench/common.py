"""Helpers shared by the benchmark scripts: workloads, workers, result rows."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from app.cli import create_event_topics
from app.deployment import delete_topics, drop_database
from app.events import MICROS_PER_DAY, make_event, now_micros
from app.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "docs" / "benchmarks.md"
MIX = {"messages": 0.05, "likes": 0.25, "views": 0.70}
BODIES = [
    "What a lovely morning, the coffee is great!",
    "This is the worst traffic jam ever.",
    "Meeting moved to 3pm, see you there.",
    "I can't believe how good this album is :)",
]


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolated_settings(name: str, **overrides: str) -> Settings:
    """Return settings with a fresh topic prefix, app id and database."""
    tag = f"bench{name}{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "SOCIALSTREAM_TOPIC_PREFIX": f"{tag}-",
        "SOCIALSTREAM_APP_ID": tag,
        "SOCIALSTREAM_MONGO_DB": tag,
        "SOCIALSTREAM_LOG_LEVEL": "WARNING",
        **overrides,
    }
    return Settings.from_env(env)


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """Return a parser with the options every script shares: --runs, --no-record."""
    parser = argparse.ArgumentParser(
        description=(doc or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="runs to take a median of")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="print only; do not append to docs/benchmarks.md",
    )
    return parser


def table_dir(settings: Settings) -> Path:
    """Return the folder of a worker's RocksDB tables (see app.pipeline)."""
    return settings.state_dir / "faust" / f"{settings.app_id}-{settings.api_port}"


async def remove_deployment(settings: Settings) -> None:
    """Delete a stopped run's topics, database and table files.

    Set ``SOCIALSTREAM_BENCH_KEEP=1`` to keep them for a look afterwards.
    """
    if os.environ.get("SOCIALSTREAM_BENCH_KEEP") == "1":
        return
    await delete_run_topics(settings)
    await asyncio.to_thread(drop_database, settings)
    shutil.rmtree(table_dir(settings), ignore_errors=True)


async def create_topic(settings: Settings, name: str) -> None:
    """Create a one-partition topic unless it exists."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def delete_run_topics(settings: Settings) -> None:
    """Delete every topic whose name contains the run's tag (its app id).

    That covers the worker's topics and Faust's changelogs, and the Quix
    baseline's changelogs too, which Quix names ``changelog__<group>--...``.
    """
    await delete_topics(settings, owns=lambda name: settings.app_id in name)


def workload(
    count: int, seed: int = 1, messages: int | None = None
) -> Iterator[Record]:
    """Yield ``count`` records of the benchmark mix, each about 150-250 bytes.

    Messages come first so that every like and view refers to a posted one.
    """
    rng = random.Random(seed)
    n_messages = messages or max(1, int(count * MIX["messages"]))
    n_likes = int(count * MIX["likes"])
    n_views = count - n_messages - n_likes
    today = now_micros() // MICROS_PER_DAY * MICROS_PER_DAY
    ids = [
        str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_messages)
    ]
    for index, message_id in enumerate(ids):
        event = make_event(
            "MessagePosted",
            message_id=message_id,
            user=f"user{index % 1000}",
            occurred_at=today + index,
            body=BODIES[index % len(BODIES)],
        )
        yield Record("messages", message_id.encode(), event.to_json())
    kinds = ["likes"] * n_likes + ["views"] * n_views
    rng.shuffle(kinds)
    for index, kind in enumerate(kinds):
        message_id = ids[int(rng.paretovariate(1.2)) % n_messages]
        user = f"user{rng.randrange(5000)}"
        at = today + 10_000 + index
        if kind == "likes":
            event = make_event(
                rng.choice(["LikeAdded", "LikeAdded", "LikeRemoved"]),
                message_id=message_id,
                user=user,
                occurred_at=at,
            )
        else:
            event = make_event(
                "ViewRecorded",
                message_id=message_id,
                user=user,
                occurred_at=at,
                started_at=at - 1_000_000,
                duration_ms=rng.randrange(100, 60_000),
            )
        yield Record(kind, message_id.encode(), event.to_json())


async def produce(settings: Settings, records: list[Record]) -> float:
    """Send every record, one Kafka record each; return the seconds it took."""
    await create_event_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=262_144,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for record in records:
            pending.append(
                await producer.send(
                    settings.topic(record.topic), record.value, key=record.key
                )
            )
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def start_worker(
    settings: Settings, log: Path, log_level: str = "WARNING"
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **{
            "SOCIALSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "SOCIALSTREAM_APP_ID": settings.app_id,
            "SOCIALSTREAM_MONGO_DB": settings.mongo_db,
            "SOCIALSTREAM_API_PORT": str(settings.api_port),
            "SOCIALSTREAM_LOG_LEVEL": log_level,
        },
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=PROJECT_ROOT,
        )


def wait_healthy(url: str, timeout: float = 120.0, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/health did not return 200 within {timeout} s")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}"


def append_result(section: str, command: str, rows: list[tuple[str, str]]) -> None:
    """Append a dated result block to docs/benchmarks.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n### {section}: {stamp}\n",
        f"Machine: {machine()}. Command: `{command}`\n",
        "| figure | value |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value} |" for name, value in rows]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def median(values: list[float]) -> float:
    return statistics.median(values)


def start_sampler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample the worker's Python stacks with py-spy into a collapsed-stack file."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy, which is missing: run make bench")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_sampler(sampler: subprocess.Popen[bytes] | None) -> None:
    """Stop a sampler from :func:`start_sampler` so that it writes its file."""
    if sampler is not None:
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=60)


def summarize_profile(path: Path, top: int = 25) -> list[str]:
    """Return the functions with the most samples on stack and on top of stack.

    Each line of py-spy's raw format is ``frame;frame;...;frame count``,
    outermost frame first.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples; share of samples with the function on the stack:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("share of samples with the function on top of the stack:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return lines


def frame_name(frame: str) -> str:
    """Return ``name (module.py)`` for a py-spy frame ``name (path/module.py:line)``."""
    name, _, place = frame.partition(" (")
    path = place.split(":")[0]
    return f"{name} ({Path(path).name})" if path else name
