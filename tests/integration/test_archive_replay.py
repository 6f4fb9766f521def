"""Archive a deployment's topics, then replay them into a new prefix."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.events import decode_event, make_event, new_message_id
from app.settings import PROJECT_ROOT, Settings
from batch_backfill.archiver import LOGICAL_TOPICS, archive_until_caught_up
from batch_backfill.replay import ReplayError, replay_archive

pytestmark = pytest.mark.integration

PARTITIONS = 3
Sent = dict[tuple[str, int], list[tuple[bytes, str, int]]]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[tuple[Settings, str]]:
    """Return settings of a source deployment and a target prefix for the replay."""
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        Settings.from_env(),
        topic_prefix=f"batchtest-{tag}-",
        app_id=f"batchtest-{tag}",
        archive_url=str(tmp_path / "archive"),
        archive_flush_rows=5,
        topic_partitions=2,
    )
    target = f"batchtest-{tag}-replay-"
    names = [settings.topic(name) for name in LOGICAL_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
        yield settings, target
        existing = set(await admin.list_topics())
        replayed = [f"{target}{name}" for name in LOGICAL_TOPICS]
        await admin.delete_topics([n for n in names + replayed if n in existing])
    finally:
        await admin.close()


async def produce(settings: Settings) -> Sent:
    """Send valid events and one invalid record; return the valid ones per partition."""
    sent: Sent = {}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for index in range(12):
            message_id = new_message_id()
            partition = index % PARTITIONS
            posted = make_event(
                "MessagePosted", message_id=message_id, user="alice", body=f"m {index}"
            )
            events = [
                posted,
                make_event("LikeAdded", message_id=message_id, user="bob"),
                make_event("LikeRemoved", message_id=message_id, user="bob"),
                make_event(
                    "ViewRecorded",
                    message_id=message_id,
                    user="carol",
                    started_at=posted.occurred_at,
                    duration_ms=10 + index,
                ),
            ]
            for event in events:
                topic = settings.topic(event.topic)
                timestamp = event.occurred_at // 1000 - 1000 * index
                await producer.send_and_wait(
                    topic,
                    event.to_json(),
                    key=message_id.encode(),
                    partition=partition,
                    timestamp_ms=timestamp,
                )
                sent.setdefault((event.topic, partition), []).append(
                    (message_id.encode(), event.event_id, timestamp)
                )
        await producer.send_and_wait(
            settings.topic("likes"), b"not json", key=b"k", partition=0
        )
    finally:
        await producer.stop()
    return sent


async def consume(bootstrap: str, prefix: str, expected: int) -> Sent:
    received: Sent = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(
            [
                TopicPartition(f"{prefix}{name}", number)
                for name in LOGICAL_TOPICS
                for number in range(PARTITIONS)
            ]
        )
        count = 0
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                logical = tp.topic.removeprefix(prefix)
                for record in records:
                    event = decode_event(record.value, expected_topic=logical)
                    received.setdefault((logical, tp.partition), []).append(
                        (record.key, event.event_id, record.timestamp)
                    )
                    count += 1
            if count >= expected:
                break
    finally:
        await consumer.stop()
    return received


async def test_replay_preserves_partitions_and_order(
    deployment: tuple[Settings, str],
) -> None:
    settings, target = deployment
    sent = await produce(settings)
    await archive_until_caught_up(settings, timeout=120)
    # Archive the last offsets again under other file names, as a restarted
    # archiver would; the replay must send each offset once.
    await archive_until_caught_up(
        dataclasses.replace(
            settings, app_id=settings.app_id + "-again", archive_flush_rows=3
        ),
        timeout=120,
    )

    summary = await replay_archive(settings, target)

    total = sum(len(events) for events in sent.values())
    assert sum(summary.sent.values()) == total
    assert summary.sent[f"{target}likes"] == 24
    received = await consume(settings.kafka_bootstrap, target, total)
    assert received == sent


async def test_replay_rejects_filled_target(deployment: tuple[Settings, str]) -> None:
    settings, target = deployment
    await produce(settings)
    await archive_until_caught_up(settings, timeout=120)
    await replay_archive(settings, target)

    with pytest.raises(ReplayError, match="already contain records"):
        await replay_archive(settings, target)


async def test_cli_archive_until_caught_up(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SOCIALSTREAM_TOPIC_PREFIX": f"batchtest-{tag}-",
        "SOCIALSTREAM_APP_ID": f"batchtest-{tag}",
        "SOCIALSTREAM_ARCHIVE_URL": str(tmp_path / "archive"),
    }
    settings = Settings.from_env(env)
    names = [settings.topic(name) for name in LOGICAL_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topic("views"), orjson.dumps({"type": "nonsense"}), key=b"k"
            )
        finally:
            await producer.stop()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "batch_backfill.cli",
                "archive",
                "--until-caught-up",
                "--timeout",
                "60",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        await admin.delete_topics(names)
        await admin.close()

    assert result.returncode == 0, result.stderr
    assert "archived 1 records (1 invalid) in 1 files" in result.stdout
    assert "partitions assigned" in result.stderr
    assert len(list((tmp_path / "archive" / "type=_invalid").rglob("*.parquet"))) == 1
