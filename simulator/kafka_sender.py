"""Send simulated records straight to the Kafka topics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.settings import Settings
from simulator.records import TOPICS, Record
from simulator.sending import Pacer, SendReport, progress_bar

logger = logging.getLogger(__name__)

# Records whose delivery is awaited together. Larger windows gain little,
# because the producer already batches by partition (linger_ms).
DELIVERY_WINDOW = 2_000
LINGER_MS = 5
MAX_BATCH_BYTES = 256 * 1024


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the three event topics when missing; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            settings.topic(name)
            for name in TOPICS
            if settings.topic(name) not in existing
        ]
        if not missing:
            return []
        new_topics = [NewTopic(name, settings.topic_partitions, 1) for name in missing]
        try:
            await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            logger.info("topics %s were created concurrently", missing)
        logger.info(
            "created topics %s with %d partitions", missing, settings.topic_partitions
        )
        return missing
    finally:
        await admin.close()


async def send_kafka(
    records: Sequence[Record],
    settings: Settings,
    *,
    duration_s: float = 0.0,
    speed: float | None = None,
    progress: bool = False,
) -> SendReport:
    """Produce every record to its topic in order and wait until all are acked.

    The producer is idempotent with ``acks=all``, so a retried batch is
    neither duplicated nor reordered within a partition, and the offset
    order of one message's records is their order in ``records``.
    """
    pacer = Pacer.for_records(records, duration_s=duration_s, speed=speed)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=LINGER_MS,
        max_batch_size=MAX_BATCH_BYTES,
    )
    report = SendReport(via="kafka")
    logger.info(
        "sending %d records to %s (topic prefix %r)",
        len(records),
        settings.kafka_bootstrap,
        settings.topic_prefix,
    )
    await producer.start()
    try:
        await _produce(producer, records, settings, pacer, report, progress)
    finally:
        await producer.stop()
    logger.info("sent %d records in %.2f s", len(records), report.elapsed_s)
    return report


async def _produce(
    producer: AIOKafkaProducer,
    records: Sequence[Record],
    settings: Settings,
    pacer: Pacer,
    report: SendReport,
    progress: bool,
) -> None:
    topic_names = {name: settings.topic(name) for name in TOPICS}
    started = time.monotonic()
    pacer.start()
    with progress_bar(len(records), progress) as bar:
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            await pacer.wait_for(record.send_at)
            delivery = await producer.send(
                topic_names[record.topic], value=record.value, key=record.key
            )
            delivery.add_done_callback(lambda _: bar.update(1))
            pending.append(delivery)
            report.sent[record.topic] += 1
            if len(pending) >= DELIVERY_WINDOW:
                await _await_deliveries(pending)
        await _await_deliveries(pending)
    report.elapsed_s = time.monotonic() - started


async def _await_deliveries(pending: list[asyncio.Future[Any]]) -> None:
    """Wait for the acks of ``pending``; raise the first delivery error."""
    if pending:
        await asyncio.gather(*pending)
        pending.clear()
