"""Archive the ``messages``, ``likes`` and ``views`` topics to Parquet.

The archiver is a consumer group of its own (``<app_id>-archiver``) with
auto-commit off. It buffers rows per topic partition and writes a
partition's buffer when it reaches ``archive_flush_rows`` rows or
``archive_flush_seconds`` of age, whichever comes first. Offsets are
committed only after every file of a flush is durably written, so a crash
re-archives records instead of losing them. Re-archived records land in
files of the same name when the flush boundaries repeat, and the backfill
drops duplicate (topic, partition, offset) rows in any case.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from app.settings import Settings
from batch_backfill.rows import KafkaRecord, Row, build_row
from batch_backfill.sinks import ArchiveSink, WrittenFile, open_sink, write_rows

logger = logging.getLogger(__name__)

LOGICAL_TOPICS = ("messages", "likes", "views")
POLL_TIMEOUT_MS = 500
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


def archiver_group_id(settings: Settings) -> str:
    return f"{settings.app_id}-archiver"


@dataclass(slots=True)
class PartitionBuffer:
    """Rows of one topic partition waiting to be written."""

    rows: list[Row] = field(default_factory=list)
    started_at: float = 0.0
    retry_at: float = 0.0
    failures: int = 0

    def add(self, row: Row, now: float) -> None:
        if not self.rows:
            self.started_at = now
        self.rows.append(row)

    def is_due(self, now: float, max_rows: int, max_age: float) -> bool:
        """Return whether the buffer is full or old enough to be written."""
        if not self.rows or now < self.retry_at:
            return False
        return len(self.rows) >= max_rows or now - self.started_at >= max_age

    @property
    def first_offset(self) -> int:
        return int(self.rows[0]["offset"])

    @property
    def last_offset(self) -> int:
        return int(self.rows[-1]["offset"])


@dataclass(slots=True)
class ArchiveSummary:
    """Rows, files and committed offsets of one archiver run."""

    rows: int = 0
    invalid_rows: int = 0
    files: list[WrittenFile] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, archiver: Archiver) -> None:
        self.archiver = archiver

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = sorted(revoked)
        if revoked:
            logger.info("partitions revoked: %s", format_partitions(revoked))
        # Write and commit what this member read, so the next owner of the
        # partition starts after it.
        for tp in revoked:
            await self.archiver.flush_partition(tp, force=True)
            self.archiver.buffers.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", format_partitions(sorted(assigned)))


class Archiver:
    """The archiver's consumer, buffers and flush policy."""

    def __init__(self, settings: Settings, sink: ArchiveSink) -> None:
        self.settings = settings
        self.sink = sink
        self.topics = {settings.topic(name): name for name in LOGICAL_TOPICS}
        self.buffers: dict[TopicPartition, PartitionBuffer] = {}
        self.summary = ArchiveSummary()
        # The rebalance listener runs in aiokafka's coordinator task, so it
        # can start a flush while the poll loop is in one.
        self.flush_lock = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=archiver_group_id(settings),
            client_id=archiver_group_id(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def start(self) -> None:
        logger.info(
            "archiver starting: group %s, topics %s, archive %s, flush at %d rows "
            "or %.1f s",
            archiver_group_id(self.settings),
            ", ".join(self.topics),
            self.sink.url,
            self.settings.archive_flush_rows,
            self.settings.archive_flush_seconds,
        )
        try:
            await self.consumer.start()
        except KafkaError:
            await self.consumer.stop()
            raise
        self.consumer.subscribe(
            topics=list(self.topics), listener=_RebalanceListener(self)
        )

    async def stop(self) -> None:
        """Write and commit every buffer, then leave the group."""
        try:
            await self.flush_all()
        finally:
            await self.consumer.stop()
        logger.info(
            "archiver stopped: %d rows (%d invalid) in %d files",
            self.summary.rows,
            self.summary.invalid_rows,
            len(self.summary.files),
        )

    async def poll_once(self, timeout_ms: int = POLL_TIMEOUT_MS) -> int:
        """Fetch one batch of records, buffer them and write the due buffers.

        Returns the number of records fetched.
        """
        batches = await self.consumer.getmany(
            timeout_ms=timeout_ms, max_records=self.settings.archive_flush_rows
        )
        now = time.monotonic()
        fetched = 0
        for tp, records in batches.items():
            buffer = self.buffers.setdefault(tp, PartitionBuffer())
            for record in records:
                buffer.add(self.row_of(record), now)
            fetched += len(records)
        await self.flush_due()
        return fetched

    def row_of(self, record: KafkaRecord) -> Row:
        return build_row(record, self.topics[record.topic])

    async def flush_due(self) -> None:
        now = time.monotonic()
        for tp, buffer in list(self.buffers.items()):
            if buffer.is_due(
                now,
                self.settings.archive_flush_rows,
                self.settings.archive_flush_seconds,
            ):
                await self.flush_partition(tp)

    async def flush_all(self) -> None:
        for tp in list(self.buffers):
            await self.flush_partition(tp, force=True)

    async def flush_partition(self, tp: TopicPartition, *, force: bool = False) -> bool:
        """Write one partition's buffer and commit its offsets.

        Returns whether the buffer is now empty. A write failure is logged,
        the partition is paused and the write is retried with a growing
        delay; ``force`` retries at once.
        """
        async with self.flush_lock:
            return await self._flush_partition(tp, force=force)

    async def _flush_partition(self, tp: TopicPartition, *, force: bool) -> bool:
        buffer = self.buffers.get(tp)
        if buffer is None or not buffer.rows:
            return True
        if not force and time.monotonic() < buffer.retry_at:
            return False
        rows = buffer.rows
        first, last = buffer.first_offset, buffer.last_offset
        try:
            files = await asyncio.to_thread(write_rows, self.sink, rows)
        except Exception:
            # Any error of the storage client (network, credentials, disk
            # full) must keep the archiver alive and the offsets uncommitted.
            self._schedule_retry(tp, buffer, first, last)
            return False
        self._log_flush(tp, first, last, files)
        buffer.rows = []
        buffer.failures = 0
        buffer.retry_at = 0.0
        self._count(rows, files)
        if tp in self.consumer.paused():
            self.consumer.resume(tp)
        await self._commit(tp, last + 1)
        return True

    def _schedule_retry(
        self, tp: TopicPartition, buffer: PartitionBuffer, first: int, last: int
    ) -> None:
        buffer.failures += 1
        delay = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (buffer.failures - 1))
        buffer.retry_at = time.monotonic() + delay
        logger.exception(
            "writing %s partition %d offsets %d-%d to %s failed (attempt %d); "
            "partition paused, retrying in %.0f s",
            tp.topic,
            tp.partition,
            first,
            last,
            self.sink.url,
            buffer.failures,
            delay,
        )
        if tp in self.consumer.assignment():
            self.consumer.pause(tp)

    def _log_flush(
        self, tp: TopicPartition, first: int, last: int, files: list[WrittenFile]
    ) -> None:
        for written in files:
            logger.info(
                "flushed %s partition %d offsets %d-%d: %d rows to %s",
                tp.topic,
                tp.partition,
                written.first_offset,
                written.last_offset,
                written.rows,
                written.path,
            )
        logger.debug(
            "flush of %s partition %d covered offsets %d-%d",
            tp.topic,
            tp.partition,
            first,
            last,
        )

    def _count(self, rows: list[Row], files: list[WrittenFile]) -> None:
        self.summary.rows += len(rows)
        self.summary.invalid_rows += sum(1 for row in rows if row["error"] is not None)
        self.summary.files.extend(files)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: offset})
        except (CommitFailedError, KafkaError):
            # The files are written; the next owner of the partition archives
            # the same records again, and the backfill drops the duplicates.
            logger.exception(
                "committing %s partition %d offset %d failed; the records after "
                "the last committed offset will be archived again",
                tp.topic,
                tp.partition,
                offset,
            )
            return
        self.summary.committed[tp] = offset

    async def lag(self) -> dict[TopicPartition, int] | None:
        """Return the records not yet fetched per partition of the topics.

        Returns None while this member does not own every partition of the
        existing topics, because the lag of the others is unknown to it.
        """
        partitions = self.known_partitions()
        assignment = self.consumer.assignment()
        if not partitions or not partitions <= assignment:
            return None
        end_offsets = await self.consumer.end_offsets(sorted(partitions))
        lag = {}
        for tp in sorted(partitions):
            position = await self.consumer.position(tp)
            lag[tp] = max(0, end_offsets[tp] - position)
        return lag

    def known_partitions(self) -> set[TopicPartition]:
        partitions: set[TopicPartition] = set()
        for topic in self.topics:
            numbers = self.consumer.partitions_for_topic(topic) or set()
            partitions.update(TopicPartition(topic, number) for number in numbers)
        return partitions


async def run_archiver(settings: Settings, stop_event: asyncio.Event) -> ArchiveSummary:
    """Archive the topics until ``stop_event`` is set, then flush and commit."""
    archiver = Archiver(settings, open_sink(settings))
    await archiver.start()
    try:
        while not stop_event.is_set():
            await archiver.poll_once()
    finally:
        await archiver.stop()
    return archiver.summary


async def archive_until_caught_up(
    settings: Settings, timeout: float = 300.0
) -> ArchiveSummary:
    """Archive until no partition has records left, flush everything and stop.

    Raises TimeoutError, with the lag per partition, when the archiver has
    not caught up within ``timeout`` seconds. The archiver must be the only
    member of its group, because it needs every partition to see their lag.
    """
    archiver = Archiver(settings, open_sink(settings))
    deadline = time.monotonic() + timeout
    await archiver.start()
    try:
        while True:
            await archiver.poll_once()
            lag = await archiver.lag()
            if lag is not None and not any(lag.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(_timeout_message(archiver, lag, timeout))
        await archiver.flush_all()
        unwritten = [tp for tp, buffer in archiver.buffers.items() if buffer.rows]
        if unwritten:
            raise RuntimeError(
                "archiver caught up but could not write "
                f"{format_partitions(sorted(unwritten))}; read the errors above"
            )
        logger.info(
            "archiver caught up: lag is zero on %s",
            format_partitions(sorted(archiver.known_partitions())),
        )
    finally:
        await archiver.stop()
    return archiver.summary


def _timeout_message(
    archiver: Archiver, lag: dict[TopicPartition, int] | None, timeout: float
) -> str:
    if lag is None:
        owned = format_partitions(sorted(archiver.consumer.assignment()))
        return (
            f"archiver did not catch up within {timeout:.0f} s: it owns only "
            f"{owned or 'no partitions'}; stop the other members of group "
            f"{archiver_group_id(archiver.settings)} or check that the topics exist"
        )
    behind = ", ".join(
        f"{tp.topic}[{tp.partition}]={count}" for tp, count in lag.items() if count
    )
    return f"archiver did not catch up within {timeout:.0f} s; lag: {behind}"


def format_partitions(partitions: Iterable[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(
        f"{topic}{sorted(numbers)}" for topic, numbers in sorted(by_topic.items())
    )
