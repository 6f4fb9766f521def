"""View agent: adds view time to the per-message totals and the rollups."""

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
from app.metrics import APPLIED, DUPLICATES, counters
from app.pipeline import Pipeline
from tables.definitions import read_window, write_window

logger = logging.getLogger(__name__)


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
    seen: set[str] = set()
    totals: dict[str, dict[str, int]] = {}
    deltas = RollupDeltas()
    deltas.add_source(batch[0])

    for record in batch:
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
        day = event.day
        if event.event_id in seen or read_window(
            tables.seen_views, event.event_id, day
        ):
            counters.inc(DUPLICATES, topic="views")
            continue
        seen.add(event.event_id)
        write_window(tables.seen_views, event.event_id, day, True)

        assert event.duration_ms is not None
        total = totals.get(event.message_id)
        if total is None:
            stored = tables.message_views.get(event.message_id)
            total = dict(stored) if stored else {"view_ms": 0, "views": 0}
            totals[event.message_id] = total
        total["view_ms"] += event.duration_ms
        total["views"] += 1
        deltas.add_user_day(event.user, day, view_ms=event.duration_ms, views=1)
        deltas.add_day(day, view_ms=event.duration_ms, views=1)

    for message_id, total in totals.items():
        tables.message_views[message_id] = total
    await deltas.send(pipeline.topics.user_rollup, pipeline.topics.day_rollup)
    counters.inc(APPLIED, len(seen), topic="views")
