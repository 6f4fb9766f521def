"""Consumer lag of the worker's group: how many records are not yet processed."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from app.settings import Settings

logger = logging.getLogger(__name__)


def worker_topics(settings: Settings) -> list[str]:
    """Return the topics the worker consumes: the three event topics and rollups."""
    rollup = f"{settings.topic_prefix}{settings.app_id}"
    return [
        settings.topic("messages"),
        settings.topic("likes"),
        settings.topic("views"),
        f"{rollup}-user-rollup",
        f"{rollup}-day-rollup",
    ]


async def group_lag(
    settings: Settings, group: str, topics: list[str]
) -> dict[str, int]:
    """Return, per topic, end offset minus the group's committed offset.

    Raises LookupError when a topic does not exist (yet).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        partitions = [
            TopicPartition(entry["topic"], item["partition"])
            for entry in described
            for item in entry["partitions"]
        ]
        missing = [entry["topic"] for entry in described if not entry["partitions"]]
        if missing:
            raise LookupError(f"topics not found: {', '.join(missing)}")
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(
            group, partitions=partitions
        )
    finally:
        await admin.close()
        await consumer.stop()
    lag: dict[str, int] = dict.fromkeys(topics, 0)
    for tp in partitions:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag[tp.topic] += max(0, ends[tp] - done)
    return lag


async def wait_for_zero_lag(
    settings: Settings, timeout_s: float, poll_s: float = 1.0
) -> dict[str, int]:
    """Wait until the worker group has no lag on any topic; return the last lag.

    Raises TimeoutError with the lag per topic when ``timeout_s`` passes.
    """
    topics = worker_topics(settings)
    deadline = time.monotonic() + timeout_s
    zero_polls = 0
    lag: dict[str, int] = {}
    while True:
        try:
            lag = await group_lag(settings, settings.app_id, topics)
        except LookupError as error:
            # The worker creates its rollup topics at start-up.
            logger.info("waiting for topics: %s", error)
            lag = {"missing": 1}
        except KafkaError as error:
            # On a new broker, the first group request creates the offsets
            # topic, and its coordinator is not available for a moment.
            if not error.retriable:
                raise
            logger.info("waiting for the group coordinator: %r", error)
            lag = {"unavailable": 1}
        # Two zero readings in a row: the rollup records sent by the last batch
        # of an event topic appear only after that batch was committed.
        zero_polls = zero_polls + 1 if sum(lag.values()) == 0 else 0
        if zero_polls >= 2:
            return lag
        if time.monotonic() >= deadline:
            raise TimeoutError(f"consumer lag did not reach zero: {lag}")
        await asyncio.sleep(poll_s)
