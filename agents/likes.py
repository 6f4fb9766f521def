"""Like agent: applies likes and unlikes to the like state and the counts.

The ``likes`` topic is keyed by message id, so all events of one message
arrive in offset order on one partition. The state of a (message, user) pair
is a table entry that also keeps the ids of the pair's recent events, which
makes a redelivered event, even an old unlike after a newer like, a no-op.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP

from agents.batching import (
    MESSAGE_PROGRESS,
    DeadLetters,
    RollupDeltas,
    ack_after,
    decode_or_none,
    partition_batches,
)
from agents.like_writer import like_writer
from app.events import Event, InvalidEvent, event_from_dict
from app.metrics import APPLIED, DUPLICATES, PARKED, UNPARKED, counters
from app.pipeline import Pipeline
from tables.definitions import read_window, write_window

logger = logging.getLogger(__name__)

# Event ids kept per (message, user) pair for de-duplication.
# NOTE: a pair with more than this many newer events could apply a very old
# redelivered event again; real pairs have a handful of events.
RECENT_EVENT_IDS = 32
# The two topics are consumed independently, so a like can overtake its
# message. Such a like is parked in the pending-likes table and applied when
# the message agent applies the message. Waiting in the agent instead would
# stall the worker's one fetcher, and with it the message agent.
PENDING_TTL_S = 300.0
# Key in Pipeline.extras of {partition: {message id: time parked}}.
PENDING_INDEX = "pending_like_index"


def register_like_agent(pipeline: Pipeline) -> None:
    app, topics = pipeline.app, pipeline.topics
    dead_letters = DeadLetters(topics.dead_letters)

    @app.agent(topics.likes, name="likes")
    async def apply_likes(stream: Any) -> None:
        async for batch in partition_batches(stream):
            await apply_like_batch(pipeline, dead_letters, batch)


def pair_key(message_id: str, user: str) -> str:
    return f"{message_id} {user}"


class _LikeBatch:
    """Reads through to the tables and collects every write of one batch."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.tables = pipeline.tables
        self.states: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        # Every message with an event in the batch, duplicates included.
        self.touched: set[str] = set()
        self.day_likes: dict[tuple[str, int], int] = defaultdict(int)
        self.deltas = RollupDeltas()
        self.applied = 0

    def state(self, key: str) -> dict[str, Any]:
        if key not in self.states:
            stored = self.tables.like_state.get(key)
            self.states[key] = (
                dict(stored) if stored else {"liked": False, "recent": []}
            )
        return self.states[key]

    def count(self, message_id: str) -> int:
        if message_id not in self.counts:
            stored = self.tables.message_likes.get(message_id)
            self.counts[message_id] = stored["like_count"] if stored else 0
        return self.counts[message_id]

    def stored_counts(self) -> dict[str, int]:
        """Return the like count of every touched message, after this batch.

        A redelivered event rewrites its message's count in MongoDB too, so
        a count whose write was lost in a crash is written when the
        unacknowledged records are read again.
        """
        counts = {}
        for message_id in self.touched:
            if message_id in self.counts:
                counts[message_id] = self.counts[message_id]
            else:
                stored = self.tables.message_likes.get(message_id)
                counts[message_id] = stored["like_count"] if stored else 0
        return counts

    def apply(self, event: Event, author: str) -> None:
        self.touched.add(event.message_id)
        state = self.state(pair_key(event.message_id, event.user))
        recent: list[str] = state["recent"]
        if event.event_id in recent:
            counters.inc(DUPLICATES, topic="likes")
            return
        state["recent"] = [*recent[-(RECENT_EVENT_IDS - 1) :], event.event_id]
        self.applied += 1
        day = event.day
        if event.type == "LikeAdded" and not state["liked"]:
            state["liked"] = True
            self.counts[event.message_id] = self.count(event.message_id) + 1
            self.day_likes[(event.message_id, day)] += 1
            self.deltas.add_user_day(event.user, day, likes_given=1)
            self.deltas.add_user_day(author, day, likes_received=1)
            self.deltas.add_day(day, likes=1)
        elif event.type == "LikeRemoved" and state["liked"]:
            state["liked"] = False
            self.counts[event.message_id] = self.count(event.message_id) - 1
            self.deltas.add_day(day, unlikes=1)

    def write_tables(self) -> None:
        for key, state in self.states.items():
            self.tables.like_state[key] = state
        for message_id, count in self.counts.items():
            self.tables.message_likes[message_id] = {"like_count": count}
        days = self.tables.message_like_days
        for (message_id, day), added in self.day_likes.items():
            before = read_window(days, message_id, day) or 0
            write_window(days, message_id, day, before + added)


async def apply_like_batch(
    pipeline: Pipeline, dead_letters: DeadLetters, batch: list[Any]
) -> None:
    decoded: list[tuple[Any, Event]] = []
    for record in batch:
        event, error = decode_or_none(record, "likes")
        if event is None:
            assert error is not None
            await dead_letters.send(record, error)
            continue
        decoded.append((record, event))

    partition = batch[-1].message.partition
    tables = pipeline.tables
    work = _LikeBatch(pipeline)
    work.deltas.add_source(batch[0])
    parked: dict[str, list[dict[str, Any]]] = {}
    for record, event in decoded:
        message_id = event.message_id
        queue = parked.get(message_id) or tables.pending_likes.get(message_id)
        author = tables.message_authors.get(message_id)
        # A like waits in the queue of its message while the message is
        # unknown, and so do the message's later likes, to keep their order.
        if author is None or queue:
            parked[message_id] = [*(queue or []), _pending_entry(record, event)]
            counters.inc(PARKED)
            continue
        work.apply(event, author["user"])

    for message_id, queue in parked.items():
        tables.pending_likes[message_id] = queue
        _pending_index(pipeline, partition).setdefault(message_id, time.monotonic())
    await _finish(pipeline, work)
    await _expire_pending(pipeline, dead_letters, partition)


async def apply_pending_likes(pipeline: Pipeline, message_ids: list[str]) -> None:
    """Apply the parked likes of messages the message agent has just applied.

    Runs inside the message agent's batch, whose partition number is that of
    the likes, so the like tables' changelog partitions stay the same.
    """
    tables = pipeline.tables
    work = _LikeBatch(pipeline)
    resolved = []
    for message_id in message_ids:
        queue = tables.pending_likes.get(message_id)
        if not queue:
            continue
        author = tables.message_authors[message_id]["user"]
        for entry in queue:
            work.apply(event_from_dict(entry["event"]), author)
        counters.inc(UNPARKED, len(queue))
        resolved.append(message_id)
    if not resolved:
        return
    # Dropped before the first await, so a like the like agent parks from
    # now on finds no queue and is applied directly, after these.
    for message_id in resolved:
        del tables.pending_likes[message_id]
        for index in pipeline.extras.get(PENDING_INDEX, {}).values():
            index.pop(message_id, None)
    await _finish(pipeline, work)


async def _finish(pipeline: Pipeline, work: _LikeBatch) -> None:
    """Write the batch's tables, queue its like counts for MongoDB, send rollups.

    The tables are written before the first await: the like agent and the
    message agent (for parked likes) both update like state, and an await
    between reading and writing it would let one overwrite the other. The
    counts go to the worker's LikeCountWriter, and the batch is acknowledged
    once they are written.
    """
    if work.states:
        work.write_tables()
    if work.touched:
        written = await like_writer(pipeline).submit(work.stored_counts())
        ack_after(written)
    await work.deltas.send(pipeline)
    counters.inc(APPLIED, work.applied, topic="likes")


def _pending_entry(record: Any, event: Event) -> dict[str, Any]:
    message = record.message
    return {
        "event": event.to_dict(),
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
    }


def _pending_index(pipeline: Pipeline, partition: int) -> dict[str, float]:
    """Return {message id: monotonic time parked} of this worker's partition."""
    indexes: dict[int, dict[str, float]] = pipeline.extras.setdefault(PENDING_INDEX, {})
    return indexes.setdefault(partition, {})


async def _expire_pending(
    pipeline: Pipeline, dead_letters: DeadLetters, partition: int
) -> None:
    """Dead-letter parked likes whose message did not arrive in time.

    A queue expires once it is older than ``PENDING_TTL_S`` and the message
    agent has read the partition to its end, so a like is not rejected while
    its message may still be in the backlog.
    NOTE: the index of parked queues lives in memory; queues recovered from
    the changelog after a restart wait until their message arrives.
    """
    index = _pending_index(pipeline, partition)
    cutoff = time.monotonic() - PENDING_TTL_S
    expired = [mid for mid, parked_at in index.items() if parked_at < cutoff]
    if not expired or not _messages_caught_up(pipeline, partition):
        return
    for message_id in expired:
        for entry in pipeline.tables.pending_likes.get(message_id) or []:
            counters.inc(UNPARKED)
            record = _entry_record(entry)
            await dead_letters.send(
                record,
                InvalidEvent("message_id", f"message {message_id} was never posted"),
            )
        del pipeline.tables.pending_likes[message_id]
        index.pop(message_id, None)


def _entry_record(entry: dict[str, Any]) -> Any:
    value = orjson.dumps(entry["event"])
    message = SimpleNamespace(
        topic=entry["topic"],
        partition=entry["partition"],
        offset=entry["offset"],
        key=entry["event"]["message_id"].encode(),
        value=value,
        timestamp=entry["timestamp"],
    )
    return SimpleNamespace(message=message)


def _messages_caught_up(pipeline: Pipeline, partition: int) -> bool:
    """Return whether the message agent has applied ``partition`` to its end."""
    consumer = getattr(pipeline.app, "consumer", None)
    if consumer is None:
        return True
    topic = pipeline.topics.messages.get_topic_name()
    highwater = consumer.highwater(TP(topic, partition))
    if highwater is None or highwater < 0:
        return False
    seen = pipeline.extras.get(MESSAGE_PROGRESS, {}).get(partition, -1)
    return bool(seen + 1 >= highwater)
