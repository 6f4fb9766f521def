"""Message agent: scores each posted message and writes it to the feed."""

from __future__ import annotations

import logging
from typing import Any

from agents.batching import (
    MESSAGE_PROGRESS,
    DeadLetters,
    RollupDeltas,
    decode_or_none,
    partition_batches,
    with_retries,
)
from agents.likes import apply_pending_likes
from app.events import Event, InvalidEvent
from app.metrics import APPLIED, DUPLICATES, counters
from app.pipeline import Pipeline
from app.sentiment import score
from app.store import MessageDocument

logger = logging.getLogger(__name__)


def register_message_agent(pipeline: Pipeline) -> None:
    app, topics = pipeline.app, pipeline.topics
    dead_letters = DeadLetters(topics.dead_letters)

    @app.agent(topics.messages, name="messages")
    async def apply_messages(stream: Any) -> None:
        async for batch in partition_batches(stream):
            await apply_message_batch(pipeline, dead_letters, batch)


async def apply_message_batch(
    pipeline: Pipeline, dead_letters: DeadLetters, batch: list[Any]
) -> None:
    authors = pipeline.tables.message_authors
    new_authors: dict[str, dict[str, Any]] = {}
    documents: list[MessageDocument] = []
    deltas = RollupDeltas()
    deltas.add_source(batch[0])

    for record in batch:
        event, error = decode_or_none(record, "messages")
        if event is None:
            assert error is not None
            await dead_letters.send(record, error)
            continue
        known = new_authors.get(event.message_id) or authors.get(event.message_id)
        if known is not None:
            if known["event_id"] == event.event_id:
                counters.inc(DUPLICATES, topic="messages")
                continue
            await dead_letters.send(
                record,
                InvalidEvent(
                    "message_id",
                    f"message {event.message_id} was already posted by event "
                    f"{known['event_id']}",
                ),
            )
            continue
        documents.append(_apply(event, deltas, new_authors))

    if documents:
        await _write(pipeline, documents, new_authors, deltas, batch)
    # Read by the like agent: a message missing after this offset was not posted.
    progress = pipeline.extras.setdefault(MESSAGE_PROGRESS, {})
    progress[batch[-1].message.partition] = batch[-1].message.offset


async def _write(
    pipeline: Pipeline,
    documents: list[MessageDocument],
    new_authors: dict[str, dict[str, Any]],
    deltas: RollupDeltas,
    batch: list[Any],
) -> None:
    authors = pipeline.tables.message_authors
    context = f"{len(documents)} messages of partition {batch[-1].message.partition}"
    await with_retries(
        lambda: pipeline.store.upsert_messages(documents), "MongoDB upsert", context
    )
    # The author becomes visible to the like agent only after the message is in
    # MongoDB, so a like accepted for this message always finds its document.
    for message_id, author in new_authors.items():
        authors[message_id] = author
    await deltas.send(pipeline)
    counters.inc(APPLIED, len(documents), topic="messages")
    await apply_pending_likes(pipeline, list(new_authors))


def _apply(
    event: Event, deltas: RollupDeltas, new_authors: dict[str, dict[str, Any]]
) -> MessageDocument:
    assert event.body is not None and event.created_at is not None
    sentiment = score(event.body)
    day = event.day
    new_authors[event.message_id] = {
        "user": event.user,
        "event_id": event.event_id,
        "day": day,
    }
    deltas.add_user_day(event.user, day, messages=1)
    deltas.add_user_total(event.user, messages=1)
    deltas.add_day(
        day,
        messages=1,
        s_count=1,
        s_sum=sentiment.compound_units,
        **{sentiment.label: 1},
    )
    return MessageDocument(
        message_id=event.message_id,
        user=event.user,
        body=event.body,
        created_us=event.created_at,
        compound=sentiment.compound,
        label=sentiment.label,
        event_id=event.event_id,
    )
