"""Rollup agents: per-user and per-day figures from the agents' deltas.

The message, like and view agents send the sums of one batch to the rollup
topics: each day's sums keyed by the day, and the users' sums packed into one
record per partition, on the partition that the user's key hashes to. So
each user's and each day's figures are owned by one partition. Every stored
value records the offset of the last rollup record applied to it. A key
always arrives on the same partition, so a record at or below that offset
was applied already: this makes the rollups idempotent when a worker
reprocesses records after a restart.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from agents.batching import partition_batches
from app.events import parse_day
from app.metrics import rollup_lag
from app.pipeline import Pipeline
from tables.definitions import read_window, write_window

logger = logging.getLogger(__name__)

OFFSET = "_offset"


def register_rollup_agents(pipeline: Pipeline) -> None:
    app, topics = pipeline.app, pipeline.topics

    @app.agent(topics.user_rollup, name="user-rollup")
    async def roll_up_users(stream: Any) -> None:
        async for batch in partition_batches(stream, lag=None):
            apply_user_rollups(pipeline, batch)

    @app.agent(topics.day_rollup, name="day-rollup")
    async def roll_up_days(stream: Any) -> None:
        async for batch in partition_batches(stream, lag=None):
            apply_day_rollups(pipeline, batch)


def merge(value: dict[str, Any] | None, fields: dict[str, int], offset: int) -> Any:
    """Add ``fields`` to ``value`` unless the record at ``offset`` was applied."""
    merged = dict(value) if value else {}
    if merged.get(OFFSET, -1) >= offset:
        return None
    for name, amount in fields.items():
        merged[name] = merged.get(name, 0) + amount
    merged[OFFSET] = offset
    return merged


def record_lag(delta: dict[str, Any], now_ms: float) -> None:
    source_ms = delta.get("source_ms")
    if source_ms is not None:
        rollup_lag.record(now_ms - source_ms)


def apply_user_rollups(pipeline: Pipeline, batch: list[Any]) -> None:
    tables = pipeline.tables
    user_days: dict[tuple[str, int], Any] = {}
    now_ms = time.time() * 1000.0
    totals: dict[str, Any] = {}
    for record in batch:
        offset = record.message.offset
        packed = orjson.loads(record.message.value)
        record_lag(packed, now_ms)
        users = packed.get("users")
        if users is None:
            # Written before users were packed: one user, named by the key.
            users = {record.message.key.decode(): packed}
        for user, delta in users.items():
            for day_text, fields in delta["days"].items():
                day = int(day_text)
                key = (user, day)
                current = user_days.get(key) or read_window(tables.user_days, user, day)
                merged = merge(current, fields, offset)
                if merged is not None:
                    user_days[key] = merged
            if delta["total"]:
                current = totals.get(user) or tables.user_totals.get(user)
                merged = merge(current, delta["total"], offset)
                if merged is not None:
                    totals[user] = merged
    for (user, day), value in user_days.items():
        write_window(tables.user_days, user, day, value)
    for user, value in totals.items():
        tables.user_totals[user] = value


def apply_day_rollups(pipeline: Pipeline, batch: list[Any]) -> None:
    tables = pipeline.tables
    days: dict[str, Any] = {}
    now_ms = time.time() * 1000.0
    for record in batch:
        day_text = record.message.key.decode()
        day = parse_day(day_text, "key")
        offset = record.message.offset
        delta = orjson.loads(record.message.value)
        record_lag(delta, now_ms)
        current = days.get(day_text) or read_window(tables.days, day_text, day)
        merged = merge(current, delta["fields"], offset)
        if merged is not None:
            days[day_text] = merged
    for day_text, value in days.items():
        write_window(tables.days, day_text, parse_day(day_text, "key"), value)
