"""Reconcile the batch views with a real worker's live tables.

The test starts a worker of its own deployment (topic prefix, app id, port
and database), sends events to its topics, archives them, runs the
backfill command and expects no difference. Then it changes one batch
figure and expects the reconciliation to report exactly that one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from app.events import (
    Event,
    EventType,
    date_to_day,
    make_event,
    new_message_id,
    now_micros,
)
from app.settings import PROJECT_ROOT, Settings
from batch_backfill.archiver import archive_until_caught_up
from batch_backfill.reconcile import (
    Difference,
    HttpLiveReader,
    LiveReadError,
    reconcile,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

WORKER_START_S = 180.0
CONVERGE_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SOCIALSTREAM_TOPIC_PREFIX": f"batchtest-{tag}-",
        "SOCIALSTREAM_APP_ID": f"batchtest-{tag}",
        "SOCIALSTREAM_API_PORT": str(free_port()),
        "SOCIALSTREAM_MONGO_DB": f"batchtest_{tag}",
        "SOCIALSTREAM_ARCHIVE_URL": str(tmp_path / "archive"),
        "SOCIALSTREAM_TOPIC_PARTITIONS": "2",
        "PYSPARK_PYTHON": sys.executable,
    }
    yield env
    settings = Settings.from_env(env)
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
    client.drop_database(settings.mongo_db)
    client.close()
    datadir = settings.state_dir / "faust" / f"{settings.app_id}-{settings.api_port}"
    shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
async def worker(env: dict[str, str], tmp_path: Path) -> AsyncIterator[Settings]:
    """Run one worker of the test's deployment; return its settings."""
    settings = Settings.from_env(env)
    subprocess.run(
        [sys.executable, "-m", "app.cli", "topics"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        timeout=60,
        capture_output=True,
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_health(settings, process, log_path)
        yield settings
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        await delete_topics(settings)


def wait_for_health(
    settings: Settings, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    reader = HttpLiveReader(settings.api_url, timeout=2)
    deadline = time.monotonic() + WORKER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"worker exited with {process.returncode}: {tail(log_path)}")
        try:
            reader.get("/stats/messages/daily", {})
            return
        except LiveReadError:
            time.sleep(1)
    pytest.fail(
        f"worker did not answer within {WORKER_START_S:.0f} s: {tail(log_path)}"
    )


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


async def delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [
            n for n in await admin.list_topics() if n.startswith(settings.topic_prefix)
        ]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def send_events(settings: Settings) -> None:
    """Send posts, then likes and views with repeats, resends and a late view."""
    now = now_micros()
    minute = 60_000_000
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        messages = []
        for index, body in enumerate(
            ["What a wonderful day!", "This is awful.", "Lunch at noon."]
        ):
            message_id = new_message_id()
            messages.append(message_id)
            event = make_event(
                "MessagePosted",
                message_id=message_id,
                user=f"author{index}",
                body=body,
                occurred_at=now - 30 * minute,
            )
            await send(producer, settings, event, resend=index == 0)
        first, second, third = messages
        likes: list[tuple[EventType, str, str]] = [
            ("LikeAdded", first, "bob"),
            ("LikeAdded", first, "bob"),
            ("LikeRemoved", first, "carol"),
            ("LikeAdded", first, "dave"),
            ("LikeRemoved", first, "dave"),
            ("LikeRemoved", first, "dave"),
            ("LikeAdded", second, "erin"),
            ("LikeRemoved", second, "erin"),
            ("LikeAdded", second, "erin"),
            ("LikeAdded", third, "bob"),
        ]
        for offset, (kind, message_id, user) in enumerate(likes):
            event = make_event(
                kind,
                message_id=message_id,
                user=user,
                occurred_at=now - 20 * minute + offset,
            )
            await send(producer, settings, event, resend=offset == 3)
        views = [
            (first, "bob", now - 10 * minute, 1200),
            (second, "carol", now - 10 * minute, 800),
            (first, "erin", now - 40 * 86_400_000_000, 500),  # beyond retention
            (third, "dave", now - 5 * minute, 300),
        ]
        for index, (message_id, user, started, duration) in enumerate(views):
            event = make_event(
                "ViewRecorded",
                message_id=message_id,
                user=user,
                occurred_at=now - minute,
                started_at=started,
                duration_ms=duration,
            )
            await send(producer, settings, event, resend=index == 1)
    finally:
        await producer.stop()


async def send(
    producer: AIOKafkaProducer, settings: Settings, event: Event, resend: bool
) -> None:
    for _ in range(2 if resend else 1):
        await producer.send_and_wait(
            settings.topic(event.topic), event.to_json(), key=event.message_id.encode()
        )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_backfill.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def wait_until_reconciled(
    settings: Settings, first: int, last: int
) -> list[Difference]:
    """Reconcile until the live tables have caught up or the time is over."""
    deadline = time.monotonic() + CONVERGE_S
    while True:
        differences = reconcile(settings, first, last, settings.api_url)
        if not differences or time.monotonic() > deadline:
            return differences
        time.sleep(2)


async def test_reconcile_with_live_worker(
    worker: Settings, env: dict[str, str]
) -> None:
    settings = worker
    await send_events(settings)
    await archive_until_caught_up(settings, timeout=120)
    today = datetime.now(UTC).date()
    first = (today - timedelta(days=1)).isoformat()
    last = today.isoformat()

    backfill = run_cli(env, "backfill", "--from", first, "--to", last)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert "invalid" not in backfill.stdout
    assert "view_rejected" in backfill.stdout

    first_day = date_to_day(today - timedelta(days=1))
    last_day = date_to_day(today)
    assert wait_until_reconciled(settings, first_day, last_day) == []
    clean = run_cli(env, "reconcile", "--from", first, "--to", last)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no differences" in clean.stdout

    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
    try:
        client[settings.mongo_db]["batch_user_totals"].update_one(
            {"_id": "author1"}, {"$inc": {"messages": 1}}
        )
    finally:
        client.close()
    changed = run_cli(env, "reconcile", "--from", first, "--to", last)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "/stats/users/author1/messages  author1" in changed.stdout
    assert "1 differences" in changed.stdout


def test_reconcile_unreachable_api(env: dict[str, str]) -> None:
    settings = dataclasses.replace(Settings.from_env(env), api_port=free_port())
    result = run_cli(
        env,
        "reconcile",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-01",
        "--api-url",
        settings.api_url,
    )

    assert result.returncode == 2
    assert f"GET {settings.api_url}/stats/messages/daily" in result.stderr
