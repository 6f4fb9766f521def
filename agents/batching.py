"""Shared machinery of the agents: batches, dead letters, rollup deltas, retries.

Every agent takes records in batches from its topic's intake
(:mod:`agents.intake`) and applies them one partition at a time, so the
table writes made for a part go to the changelog partition of that source
partition, which is what Faust requires for recovery. The agents run one
actor each over all assigned partitions: with one actor per partition
(``isolated_partitions``), Faust 0.15.3 left actors that no longer consumed
after a second worker joined the group.
Deltas for the per-user and per-day tables are summed per batch and sent to
the rollup topics: one record per day, and the users packed into one record
per partition of the user-rollup topic.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import orjson
from faust import streams
from faust.events import Event as FaustEvent

from agents.continuity import OffsetContinuity
from agents.intake import Intake, IntakeRecord, topic_intake
from app.events import Event, InvalidEvent, day_to_date, decode_event
from app.metrics import REJECTED, LagRecorder, applied_lag, counters

logger = logging.getLogger(__name__)

# Key in Pipeline.extras of {partition: offset of the last message record the
# message agent applied}. The like agent reads it to decide whether a missing message
# can still arrive.
MESSAGE_PROGRESS = "message_progress"
BATCH_MAX = 1000
# How long an intake waits to fill a batch. Under a backlog, batches fill
# sooner. At 1,000 events/s, this wait sets the delay before an event is
# applied: 50 ms gave a median visibility of 46 to 54 ms, and 20 ms one of
# 19 to 25 ms at the same throughput. 10 ms gave a slower tail.
BATCH_WITHIN_S = 0.02
# A batch's per-user sums go to the user-rollup topic as one record per
# partition, each with at most this many users (about 60 bytes each), rather
# than one record per user: a batch of 1,000 views touches about 900 users.
USERS_PER_ROLLUP_RECORD = 500
# Key in Pipeline.extras of the UserRouter, and the users it remembers.
USER_ROUTER = "user_router"
USER_PARTITION_CACHE = 100_000
RETRY_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)

T = TypeVar("T")

# Futures that the current batch's acknowledgement waits for. intake_batches
# sets the list around each batch it yields (see ack_after).
_ACK_AFTER: ContextVar[list[asyncio.Future[None]] | None] = ContextVar(
    "ack_after", default=None
)


def ack_after(done: asyncio.Future[None]) -> None:
    """Acknowledge the current batch's records only once ``done`` has a result.

    If ``done`` is cancelled or fails, the records stay unacknowledged, so
    the partition's next owner, or this worker after a restart, reads them
    again.
    """
    waits = _ACK_AFTER.get()
    if waits is None:
        raise RuntimeError("ack_after is only valid while an agent applies a batch")
    waits.append(done)


def ack_when_done(
    consumer: Any, messages: list[Any], waits: list[asyncio.Future[None]]
) -> None:
    """Acknowledge ``messages`` once every future in ``waits`` has a result."""
    remaining = len(waits)

    def on_done(future: asyncio.Future[None]) -> None:
        nonlocal remaining
        if future.cancelled() or future.exception() is not None:
            return
        remaining -= 1
        if remaining == 0:
            for message in messages:
                consumer.ack(message)

    for future in waits:
        future.add_done_callback(on_done)


class AgentActivity:
    """Record of when each topic's agent last worked on a batch, and if it does now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._busy: dict[str, int] = defaultdict(int)
        self._last: dict[str, float] = {}

    def begin(self, topic: str) -> None:
        self._busy[topic] += 1
        self._last[topic] = self._clock()

    def end(self, topic: str) -> None:
        self._busy[topic] -= 1
        self._last[topic] = self._clock()

    def idle_since(self, topic: str) -> float | None:
        """Return the time since which the topic's agent is idle, or None if busy."""
        if self._busy[topic] > 0:
            return None
        return self._last.get(topic, self._started)


# Read by the stall guard, which treats only an idle agent's partition as stalled.
activity = AgentActivity()


async def partition_batches(
    stream: Any, lag: LagRecorder | None = applied_lag
) -> AsyncIterator[list[Any]]:
    """Yield the records of the stream's topic in batches, each from one partition.

    The records come from the topic's intake (see :mod:`agents.intake`), in
    offset order within each batch.
    """
    intake = topic_intake(stream)
    if intake is None:
        raise RuntimeError(
            f"no intake for the topics of {stream!r}; "
            "add one with IntakeConductor.add_intake before the worker starts"
        )
    async for part in intake_batches(stream.app, intake):
        yield part
        if lag is not None:
            now = time.time()
            for record in part:
                lag.record((now - record.message.timestamp) * 1000.0)


async def intake_batches(app: Any, intake: Intake) -> AsyncIterator[list[Any]]:
    """Yield the intake's records in batches, each from a single partition.

    The records of a batch are tracked as pending while the caller applies
    them, and acknowledged when it requests the next batch (see
    :mod:`agents.intake`), or later, once every future the caller passed to
    :func:`ack_after` for the batch has a result.
    """
    continuity = OffsetContinuity()
    consumer = app.consumer
    while True:
        messages = await intake.take(BATCH_MAX, BATCH_WITHIN_S)
        generation = app.consumer_generation_id
        parts: dict[Any, list[Any]] = {}
        for message in messages:
            if message.generation_id == generation:
                parts.setdefault(message.tp, []).append(IntakeRecord(message))
        for records in parts.values():
            if not app.flow_control.is_active():
                break
            part = await admit_contiguous(app, continuity, records)
            if not part:
                continue
            for record in part:
                consumer.track_message(record.message)
            last = part[-1].message
            # Faust's tables take the changelog partition from the current
            # event, which must stay referenced while the caller writes.
            current = FaustEvent(app, last.key, last.value, last.headers, last)
            streams._current_event.set(weakref.ref(current))
            activity.begin(last.topic)
            waits: list[asyncio.Future[None]] = []
            _ACK_AFTER.set(waits)
            try:
                yield part
            finally:
                _ACK_AFTER.set(None)
                activity.end(last.topic)
            messages = [record.message for record in part]
            if waits:
                ack_when_done(consumer, messages, waits)
                continue
            for message in messages:
                consumer.ack(message)


async def admit_contiguous(
    app: Any, continuity: OffsetContinuity, records: list[Any]
) -> list[Any]:
    """Return the records of one partition that follow on without a gap.

    When Faust skipped records, the partition is sought back to the first
    missing one, so it is read again (see :mod:`agents.continuity`).
    """
    consumer = app.consumer
    tp = records[0].message.tp
    # Faust keeps the committed offsets only in a private attribute.
    committed = consumer._committed_offset.get(tp)
    admitted = continuity.admit(records, app.consumer_generation_id, committed)
    if admitted.seek_to is not None:
        await consumer.seek(tp, admitted.seek_to)
    return admitted.records


class DeadLetters:
    """Sends rejected records to the dead-letter topic with their position."""

    def __init__(self, topic: Any) -> None:
        self._topic = topic
        self._last_log = 0.0
        self._suppressed = 0

    async def send(self, record: Any, error: InvalidEvent | Exception) -> None:
        message = record.message
        field = getattr(error, "field", None)
        reason = getattr(error, "message", None) or str(error)
        value: bytes = message.value or b""
        payload = {
            "error": reason,
            "field": field,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": _text(message.key),
            "value": _text(value),
            "value_base64": base64.b64encode(value).decode(),
            "rejected_at_ms": int(time.time() * 1000),
        }
        await self._topic.send(key=message.key, value=orjson.dumps(payload))
        counters.inc(REJECTED, topic=message.topic, reason=_reason(field))
        self._log(message, field, reason)

    def _log(self, message: Any, field: str | None, reason: str) -> None:
        # Logged at most once a second, so the counter keeps the exact number.
        now = time.monotonic()
        if now - self._last_log < 1.0:
            self._suppressed += 1
            return
        logger.warning(
            "dead-lettered record %s[%d]@%d: %s: %s (%d more since last log)",
            message.topic,
            message.partition,
            message.offset,
            field,
            reason,
            self._suppressed,
        )
        self._last_log = now
        self._suppressed = 0


def decode_or_none(record: Any, topic: str) -> tuple[Event | None, InvalidEvent | None]:
    try:
        return decode_event(record.message.value or b"", expected_topic=topic), None
    except InvalidEvent as error:
        return None, error


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace")


def _reason(field: str | None) -> str:
    return field or "unknown"


def day_key(day: int) -> str:
    return day_to_date(day).isoformat()


class RollupDeltas:
    """Sums of per-user and per-day counts collected over one batch."""

    def __init__(self) -> None:
        self.user_days: dict[str, dict[int, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self.user_totals: dict[str, dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.days: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # Kafka timestamp, in ms, of the oldest source record of the batch.
        self.source_ms: int | None = None

    def add_source(self, record: Any) -> None:
        timestamp_ms = int(record.message.timestamp * 1000)
        if self.source_ms is None or timestamp_ms < self.source_ms:
            self.source_ms = timestamp_ms

    def add_user_day(self, user: str, day: int, **amounts: int) -> None:
        bucket = self.user_days[user][day]
        for name, amount in amounts.items():
            bucket[name] += amount

    def add_user_total(self, user: str, **amounts: int) -> None:
        bucket = self.user_totals[user]
        for name, amount in amounts.items():
            bucket[name] += amount

    def add_day(self, day: int, **amounts: int) -> None:
        bucket = self.days[day]
        for name, amount in amounts.items():
            bucket[name] += amount

    async def send(self, pipeline: Any) -> None:
        """Send the batch's user sums packed per partition, and one record per day."""
        topics = pipeline.topics
        router = user_router(pipeline)
        packs: dict[int, dict[str, Any]] = defaultdict(dict)
        for user in set(self.user_days) | set(self.user_totals):
            days = self.user_days.get(user, {})
            packs[await router.partition(user)][user] = {
                "days": {str(day): dict(fields) for day, fields in days.items()},
                "total": dict(self.user_totals.get(user, {})),
            }
        for partition, users in packs.items():
            names = list(users)
            for start in range(0, len(names), USERS_PER_ROLLUP_RECORD):
                chunk = {
                    name: users[name]
                    for name in names[start : start + USERS_PER_ROLLUP_RECORD]
                }
                value = {"users": chunk, "source_ms": self.source_ms}
                await topics.user_rollup.send(
                    key=None, value=orjson.dumps(value), partition=partition
                )
        for day, fields in self.days.items():
            value = {"day": day, "fields": dict(fields), "source_ms": self.source_ms}
            await topics.day_rollup.send(
                key=day_key(day).encode(), value=orjson.dumps(value)
            )


class UserRouter:
    """The user-rollup partition of each user, as Kafka's key partitioner picks it.

    The HTTP views find the owner of a user's figures by hashing the user on
    the user-rollup topic with the producer's partitioner, so a packed record
    must go to the partition that this same hash gives.
    """

    def __init__(self, app: Any, topic: Any) -> None:
        self._producer = app.producer
        self._topic = topic.get_topic_name()
        self._partitions: dict[str, int] = {}
        self._metadata_ready = False

    async def partition(self, user: str) -> int:
        partition = self._partitions.get(user)
        if partition is not None:
            return partition
        if not self._metadata_ready:
            # key_partition reads the producer's metadata, which has no entry
            # for a topic until the producer first used it. Faust's producer
            # has no public way to wait for one, hence the private call.
            await self._producer._ensure_producer().partitions_for(self._topic)
            self._metadata_ready = True
        partition = self._producer.key_partition(self._topic, user.encode()).partition
        if len(self._partitions) >= USER_PARTITION_CACHE:
            self._partitions.clear()
        self._partitions[user] = partition
        return int(partition)


def user_router(pipeline: Any) -> Any:
    """Return the pipeline's :class:`UserRouter`, created on first use."""
    router = pipeline.extras.get(USER_ROUTER)
    if router is None:
        router = UserRouter(pipeline.app, pipeline.topics.user_rollup)
        pipeline.extras[USER_ROUTER] = router
    return router


async def with_retries(
    action: Callable[[], Awaitable[T]], what: str, context: str
) -> T:
    """Run ``action``, retrying with back-off; the last failure is raised."""
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return await action()
        except Exception as error:  # noqa: BLE001 - logged, retried, re-raised
            if delay is None:
                logger.error(
                    "%s failed for %s after %d attempts: %s",
                    what,
                    context,
                    attempt,
                    error,
                )
                raise
            logger.warning(
                "%s failed for %s (attempt %d), retrying in %.1f s: %s",
                what,
                context,
                attempt,
                delay,
                error,
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
