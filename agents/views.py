"""View agent: adds view time to the per-message totals and the rollups.

Views are 70 % of the traffic, so the agent keeps their de-duplication
cheap, with no table key per view. The total of each message keeps the event
ids of its last ``RECENT_VIEW_IDS`` views, so a view found there is a
duplicate, whether Kafka delivered the record again or a producer sent a
copy. The ``view-offsets`` table keeps the last applied offset of each
partition, so the counters can separate the two.

NOTE: a copy or redelivery that comes more than ``RECENT_VIEW_IDS`` views
of the same message after its original is counted a second time.
"""

from __future__ import annotations

import logging
from typing import Any

from agents.batching import (
    DeadLetters,
    RollupDeltas,
    decode_or_none,
    partition_batches,
)
from app.events import InvalidEvent, check_view_timing
from app.metrics import APPLIED, DUPLICATES, REDELIVERED, counters
from app.pipeline import Pipeline

logger = logging.getLogger(__name__)

RECENT_VIEW_IDS = 64


def register_view_agent(pipeline: Pipeline) -> None:
    app, topics = pipeline.app, pipeline.topics
    dead_letters = DeadLetters(topics.dead_letters)

    @app.agent(topics.views, name="views")
    async def apply_views(stream: Any) -> None:
        async for batch in partition_batches(stream):
            await apply_view_batch(pipeline, dead_letters, batch)


async def apply_view_batch(
    pipeline: Pipeline, dead_letters: DeadLetters, batch: list[Any]
) -> None:
    tables = pipeline.tables
    retention = pipeline.settings.retention_days
    partition = str(batch[0].message.partition)
    applied_to = tables.view_offsets.get(partition)
    applied = 0
    totals: dict[str, dict[str, Any]] = {}
    deltas = RollupDeltas()
    deltas.add_source(batch[0])

    for record in batch:
        # Faust can leave gaps below the last applied offset, so an offset at or
        # below it only names the counter, and the event id decides.
        redelivered = applied_to is not None and record.message.offset <= applied_to
        event, error = decode_or_none(record, "views")
        if event is not None:
            try:
                check_view_timing(event, retention)
            except InvalidEvent as timing_error:
                event, error = None, timing_error
        if event is None:
            assert error is not None
            await dead_letters.send(record, error)
            continue

        total = totals.get(event.message_id)
        if total is None:
            stored = tables.message_views.get(event.message_id)
            total = {"view_ms": 0, "views": 0, "recent": []}
            if stored:
                total.update(stored)
                total["recent"] = list(stored.get("recent", ()))
            totals[event.message_id] = total
        if event.event_id in total["recent"]:
            counters.inc(REDELIVERED if redelivered else DUPLICATES, topic="views")
            continue
        total["recent"] = [*total["recent"][1 - RECENT_VIEW_IDS :], event.event_id]

        assert event.duration_ms is not None
        day = event.day
        total["view_ms"] += event.duration_ms
        total["views"] += 1
        applied += 1
        deltas.add_user_day(event.user, day, view_ms=event.duration_ms, views=1)
        deltas.add_day(day, view_ms=event.duration_ms, views=1)

    for message_id, total in totals.items():
        tables.message_views[message_id] = total
    tables.view_offsets[partition] = batch[-1].message.offset
    await deltas.send(pipeline)
    counters.inc(APPLIED, applied, topic="views")
