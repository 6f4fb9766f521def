"""Like agent: applies likes and unlikes to the like state and the counts.

The ``likes`` topic is keyed by message id, so all events of one message
arrive in offset order on one partition. The state of a (message, user) pair
is a table entry that also keeps the ids of the pair's recent events, which
makes a redelivered event, even an old unlike after a newer like, a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from faust.types import TP

from agents.batching import (
    DeadLetters,
    RollupDeltas,
    decode_or_none,
    partition_batches,
    with_retries,
)
from agents.messages import MESSAGE_PROGRESS
from app.events import Event, InvalidEvent
from app.metrics import APPLIED, DUPLICATES, counters
from app.pipeline import Pipeline
from tables.definitions import read_window, write_window

logger = logging.getLogger(__name__)

# Event ids kept per (message, user) pair for de-duplication.
# NOTE: a pair with more than this many newer events could apply a very old
# redelivered event again; real pairs have a handful of events.
RECENT_EVENT_IDS = 32
# The two topics are consumed independently, so a like can overtake its
# message. A like whose message is missing waits while the message agent
# still has records of the same partition to read, and at most this long.
AUTHOR_WAIT_S = 10.0
AUTHOR_POLL_S = 0.02


def register_like_agent(pipeline: Pipeline) -> None:
    app, topics = pipeline.app, pipeline.topics
    dead_letters = DeadLetters(topics.dead_letters)

    @app.agent(topics.likes, name="likes", isolated_partitions=True)
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
        self.day_likes: dict[tuple[str, int], int] = defaultdict(int)
        self.deltas = RollupDeltas()
        self.applied = 0

    def state(self, key: str) -> dict[str, Any]:
        if key not in self.states:
            stored = self.tables.like_state.get(key)
            self.states[key] = dict(stored) if stored else {"liked": False, "recent": []}
        return self.states[key]

    def count(self, message_id: str) -> int:
        if message_id not in self.counts:
            stored = self.tables.message_likes.get(message_id)
            self.counts[message_id] = stored["like_count"] if stored else 0
        return self.counts[message_id]

    def apply(self, event: Event, author: str) -> None:
        state = self.state(pair_key(event.message_id, event.user))
        recent: list[str] = state["recent"]
        if event.event_id in recent:
            counters.inc(DUPLICATES, topic="likes")
            return
        state["recent"] = [*recent[-(RECENT_EVENT_IDS - 1):], event.event_id]
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
    if not decoded:
        return

    partition = batch[-1].message.partition
    wanted = {e.message_id for _, e in decoded}
    authors = await _wait_for_authors(pipeline, wanted, partition)
    work = _LikeBatch(pipeline)
    work.deltas.add_source(batch[0])
    for record, event in decoded:
        author = authors.get(event.message_id)
        if author is None:
            await dead_letters.send(record, InvalidEvent(
                "message_id", f"message {event.message_id} was never posted"
            ))
            continue
        work.apply(event, author)

    changed = {mid: work.counts[mid] for mid in work.counts}
    context = f"{len(changed)} messages of partition {batch[-1].message.partition}"
    await with_retries(
        lambda: pipeline.store.set_like_counts(changed), "MongoDB like counts", context
    )
    work.write_tables()
    await work.deltas.send(pipeline.topics.user_rollup, pipeline.topics.day_rollup)
    counters.inc(APPLIED, work.applied, topic="likes")


async def _wait_for_authors(
    pipeline: Pipeline, message_ids: set[str], partition: int
) -> dict[str, str]:
    """Return the author of each message, waiting a while for missing ones.

    The wait ends early once the message agent has read its partition to the
    end twice in a row: a message missing then was never posted before the like.
    """
    table = pipeline.tables.message_authors
    authors: dict[str, str] = {}
    missing = set(message_ids)
    deadline = time.monotonic() + AUTHOR_WAIT_S
    caught_up_checks = 0
    while True:
        for message_id in list(missing):
            entry = table.get(message_id)
            if entry is not None:
                authors[message_id] = entry["user"]
                missing.discard(message_id)
        if not missing or time.monotonic() >= deadline:
            return authors
        caught_up_checks = caught_up_checks + 1 if _messages_caught_up(
            pipeline, partition) else 0
        if caught_up_checks >= 2:
            return authors
        await asyncio.sleep(AUTHOR_POLL_S)


def _messages_caught_up(pipeline: Pipeline, partition: int) -> bool:
    """Return whether the message agent has read ``partition`` to its end."""
    consumer = getattr(pipeline.app, "consumer", None)
    if consumer is None:
        return False
    topic = pipeline.topics.messages.get_topic_name()
    highwater = consumer.highwater(TP(topic, partition))
    if highwater is None or highwater < 0:
        return False
    seen = pipeline.extras.get(MESSAGE_PROGRESS, {}).get(partition, -1)
    return bool(seen + 1 >= highwater)
