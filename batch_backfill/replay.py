"""Re-publish the archived valid events into the topics of a fresh deployment.

Each event goes to the same partition number of the topic with the new
prefix, in (partition, offset) order, with its original key and Kafka
timestamp, so a worker of the new deployment reads every partition in the
order the old one did. Rows of re-archived offsets are sent once. Records
that ``decode_event`` rejected are not replayed; views that fail the timing
rule are, because the new worker rejects them by the same rule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.events import TOPIC_OF_TYPE, Event
from app.settings import Settings
from batch_backfill.reader import archive_dataset

logger = logging.getLogger(__name__)

# Messages first: the like agent rejects a like whose message it has not
# seen within a short wait, and the new worker reads the topics in parallel.
REPLAY_ORDER = ("messages", "likes", "views")
SEND_BATCH = 1000
PROGRESS_EVERY = 100_000


class ReplayError(RuntimeError):
    """The replay cannot start or its target is unusable."""


@dataclass
class ReplaySummary:
    """Records sent per target topic."""

    sent: dict[str, int] = field(default_factory=dict)


def replay_target(settings: Settings, to_prefix: str) -> Settings:
    """Return the settings of the deployment that receives the replay.

    Raises ReplayError when the prefix is that of the source deployment.
    """
    if to_prefix == settings.topic_prefix:
        raise ReplayError(
            f"the target prefix {to_prefix!r} is the prefix of the archived "
            "deployment; choose a new SOCIALSTREAM_TOPIC_PREFIX"
        )
    return dataclasses.replace(settings, topic_prefix=to_prefix)


def topic_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Yield the rows of one topic in (partition, offset) order, each offset once."""
    table = table.sort_by([("partition", "ascending"), ("offset", "ascending")])
    for name in ("kafka_timestamp", "occurred_at", "created_at", "started_at"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(pa.int64()))
    previous: tuple[int, int] | None = None
    for row in table.to_pylist():
        position = (row["partition"], row["offset"])
        if position == previous:
            continue
        previous = position
        yield row


def event_of_row(row: dict[str, Any]) -> Event:
    return Event(
        event_id=row["event_id"],
        type=row["type"],
        occurred_at=row["occurred_at"],
        message_id=row["message_id"],
        user=row["user"],
        body=row["body"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
    )


def load_topic(settings: Settings, logical: str) -> pa.Table:
    """Load the valid archived rows of one logical topic.

    Raises ReplayError when the archive mixes topics of several deployments.
    NOTE: the rows of one topic are held in memory; replay archives larger
    than memory with Spark instead.
    """
    types = [kind for kind, topic in TOPIC_OF_TYPE.items() if topic == logical]
    table = archive_dataset(settings).to_table(filter=pc.field("type").isin(types))
    sources = set(table.column("topic").unique().to_pylist())
    if len(sources) > 1:
        raise ReplayError(
            f"the archive contains {logical} events of several topics "
            f"({', '.join(sorted(sources))}); replay one deployment's archive"
        )
    return table


async def prepare_topics(target: Settings, partitions: dict[str, int]) -> None:
    """Create the target topics, or check that existing ones are empty and wide enough.

    ``partitions`` is the partition count needed per logical topic.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=target.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(target.topic(name), count, 1)
            for name, count in partitions.items()
            if target.topic(name) not in existing
        ]
        if missing:
            await admin.create_topics(missing)
            logger.info("created %s", ", ".join(topic.name for topic in missing))
    finally:
        await admin.close()
    await check_targets_empty(target, partitions)


async def check_targets_empty(target: Settings, partitions: dict[str, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=target.kafka_bootstrap)
    await producer.start()
    try:
        for name, needed in partitions.items():
            topic = target.topic(name)
            available = await producer.partitions_for(topic)
            if len(available) < needed:
                raise ReplayError(
                    f"topic {topic} has {len(available)} partitions but the "
                    f"archive needs {needed}; delete it or choose a new prefix"
                )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=target.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [
            TopicPartition(target.topic(name), number)
            for name, needed in partitions.items()
            for number in range(needed)
        ]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    filled = sorted(f"{tp.topic}[{tp.partition}]" for tp, end in ends.items() if end)
    if filled:
        raise ReplayError(
            f"target topics already contain records ({', '.join(filled)}); a replay "
            "would duplicate them, so choose a new prefix"
        )


async def replay_archive(settings: Settings, to_prefix: str) -> ReplaySummary:
    """Replay the archive of ``settings`` into the topics named with ``to_prefix``."""
    target = replay_target(settings, to_prefix)
    tables = {name: load_topic(settings, name) for name in REPLAY_ORDER}
    partitions = {
        name: max(settings.topic_partitions, _max_partition(table) + 1)
        for name, table in tables.items()
    }
    await prepare_topics(target, partitions)
    summary = ReplaySummary()
    producer = AIOKafkaProducer(
        bootstrap_servers=target.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    try:
        for name in REPLAY_ORDER:
            topic = target.topic(name)
            summary.sent[topic] = await send_rows(producer, topic, tables.pop(name))
            logger.info("replayed %d events into %s", summary.sent[topic], topic)
    finally:
        await producer.stop()
    return summary


async def send_rows(producer: AIOKafkaProducer, topic: str, table: pa.Table) -> int:
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    for row in topic_rows(table):
        timestamp = row["kafka_timestamp"]
        pending.append(
            await producer.send(
                topic,
                event_of_row(row).to_json(),
                key=row["key"],
                partition=row["partition"],
                timestamp_ms=None if timestamp is None else timestamp // 1000,
            )
        )
        if len(pending) >= SEND_BATCH:
            sent += len(await asyncio.gather(*pending))
            pending = []
            if sent % PROGRESS_EVERY == 0:
                logger.info("replayed %d events into %s so far", sent, topic)
    sent += len(await asyncio.gather(*pending))
    return sent


def _max_partition(table: pa.Table) -> int:
    if table.num_rows == 0:
        return -1
    return int(pc.max(table.column("partition")).as_py())
