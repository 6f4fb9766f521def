"""The simulator's Kafka sender against the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings
from simulator.config import SimulationConfig
from simulator.kafka_sender import ensure_topics, send_kafka
from simulator.records import TOPICS
from simulator.simulation import simulate

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 60.0


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        Settings.from_env(), topic_prefix=f"simtest-{tag}-", topic_partitions=3
    )
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(settings.topic(name) for name in TOPICS)
    yield settings
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(created)
    finally:
        await admin.close()


async def read_all(
    settings: Settings, expected: int
) -> list[tuple[str, int, int, bytes, bytes]]:
    """Read (topic, partition, offset, key, value) until ``expected`` records."""
    names = [settings.topic(name) for name in TOPICS]
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    rows: list[tuple[str, int, int, bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
        while len(rows) < expected:
            if asyncio.get_running_loop().time() > deadline:
                break
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                for message in batch:
                    assert message.key is not None
                    assert message.value is not None
                    rows.append(
                        (
                            message.topic,
                            message.partition,
                            message.offset,
                            message.key,
                            message.value,
                        )
                    )
        # Anything beyond ``expected`` would be a duplicate from the sender.
        extra = await consumer.getmany(timeout_ms=1000)
        rows.extend(
            (m.topic, m.partition, m.offset, m.key or b"", m.value or b"")
            for batch in extra.values()
            for m in batch
        )
    finally:
        await consumer.stop()
    return rows


async def test_send_kafka_exact_records(settings: Settings) -> None:
    config = SimulationConfig(
        seed=21,
        users=6,
        days=2,
        messages_per_day=25,
        invalid_share=0.05,
        duplicate_share=0.05,
    )
    simulation = simulate(config)
    records = simulation.events

    report = await send_kafka(records, settings)
    rows = await read_all(settings, len(records))

    sent_per_topic = Counter(record.topic for record in records)
    read_per_topic = Counter(
        topic.removeprefix(settings.topic_prefix) for topic, *_ in rows
    )
    assert len(rows) == len(records)
    assert read_per_topic == sent_per_topic
    assert dict(report.sent) == dict(sent_per_topic)
    for topic in TOPICS:
        assert simulation.truth["sent"][topic]["total"] == sent_per_topic[topic]
    assert Counter(value for *_, value in rows) == Counter(r.value for r in records)


async def test_send_kafka_keeps_key_order(settings: Settings) -> None:
    simulation = simulate(
        SimulationConfig(seed=22, users=5, days=1, messages_per_day=20)
    )
    records = simulation.events
    await send_kafka(records, settings)
    rows = await read_all(settings, len(records))

    partitions_of_key: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    read_order: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for topic, partition, _, key, value in sorted(rows):
        partitions_of_key[(topic, key)].add(partition)
        read_order[(topic, key)].append(value)
    sent_order: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for record in records:
        sent_order[(settings.topic(record.topic), record.key)].append(record.value)

    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert read_order == sent_order


async def test_send_kafka_paced(settings: Settings) -> None:
    simulation = simulate(
        SimulationConfig(seed=23, users=3, days=1, messages_per_day=8)
    )
    report = await send_kafka(simulation.events, settings, duration_s=2.0)
    assert 1.8 <= report.elapsed_s < 10.0
    rows = await read_all(settings, len(simulation.events))
    assert len(rows) == len(simulation.events)
