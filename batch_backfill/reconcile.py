"""Compare the batch views in MongoDB with the live tables over HTTP.

The users checked are those with a ``batch_user_daily`` document in the
range. The messages checked are those with a ``batch_message_daily``
document in the range, or a ``batch_message_totals`` document created in it.
A key missing on one side counts as zeros, as the live endpoints return
zeros for a day without events. Keys only the live tables know are not
found this way, but the per-day figures still show their events.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import MongoClient
from pymongo.database import Database

from app.settings import Settings
from batch_backfill import batch_views
from batch_backfill.batch_views import Document, day_text

logger = logging.getLogger(__name__)

# The live endpoints accept ranges of at most this many days.
MAX_RANGE_DAYS = 366
HTTP_TIMEOUT_S = 30.0

Value = int | float | None

DAILY_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/stats/messages/daily": ("messages",),
    "/stats/likes/daily": ("likes", "unlikes"),
    "/stats/views/daily": ("view_ms", "views"),
    "/stats/sentiment/daily": (
        "count",
        "compound_sum",
        "mean_compound",
        "positive",
        "neutral",
        "negative",
    ),
}
USER_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "likes": ("likes_given", "likes_received"),
    "views": ("view_ms", "views"),
}


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure on which the batch view and the live table disagree."""

    endpoint: str
    key: str
    field: str
    batch: Value
    live: Value


class LiveReadError(RuntimeError):
    """A live endpoint could not be read."""


class LiveReader(Protocol):
    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """Return the JSON body of GET ``path``; raise LiveReadError on failure."""
        ...


class HttpLiveReader:
    """Reads the live endpoints of a worker with urllib."""

    def __init__(self, api_url: str, timeout: float = HTTP_TIMEOUT_S) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        url = f"{self.api_url}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode("utf-8", "replace")
            raise LiveReadError(f"GET {url} returned {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise LiveReadError(f"GET {url} failed: {error}") from None
        return body


@dataclass
class BatchSnapshot:
    """The batch-view documents of one day range, keyed as the endpoints are."""

    daily: dict[str, Document] = field(default_factory=dict)
    user_daily: dict[tuple[str, str], Document] = field(default_factory=dict)
    user_totals: dict[str, Document] = field(default_factory=dict)
    message_daily: dict[tuple[str, str], Document] = field(default_factory=dict)
    message_totals: dict[str, Document] = field(default_factory=dict)

    def users(self) -> list[str]:
        return sorted({user for user, _ in self.user_daily})

    def messages(self, from_day: int, to_day: int) -> list[str]:
        first, last = day_text(from_day), day_text(to_day)
        ids = {message_id for message_id, _ in self.message_daily}
        ids.update(
            message_id
            for message_id, document in self.message_totals.items()
            if document.get("created_day") and first <= document["created_day"] <= last
        )
        return sorted(ids)


def load_snapshot(db: Database[Document], from_day: int, to_day: int) -> BatchSnapshot:
    day_range = {"day": {"$gte": day_text(from_day), "$lte": day_text(to_day)}}
    snapshot = BatchSnapshot()
    for document in db[batch_views.BATCH_DAILY].find(day_range):
        snapshot.daily[document["day"]] = document
    for document in db[batch_views.BATCH_USER_DAILY].find(day_range):
        snapshot.user_daily[(document["user"], document["day"])] = document
    for document in db[batch_views.BATCH_MESSAGE_DAILY].find(day_range):
        snapshot.message_daily[(document["message_id"], document["day"])] = document
    users = snapshot.users()
    for document in db[batch_views.BATCH_USER_TOTALS].find({"_id": {"$in": users}}):
        snapshot.user_totals[document["user"]] = document
    for document in db[batch_views.BATCH_MESSAGE_TOTALS].find():
        snapshot.message_totals[document["message_id"]] = document
    return snapshot


def reconcile(
    settings: Settings,
    from_day: int,
    to_day: int,
    api_url: str,
    reader: LiveReader | None = None,
) -> list[Difference]:
    """Return every difference between the batch views and the live tables.

    Raises LiveReadError when an endpoint cannot be read.
    """
    client: MongoClient[Document] = MongoClient(settings.mongo_url)
    try:
        snapshot = load_snapshot(client[settings.mongo_db], from_day, to_day)
    finally:
        client.close()
    logger.info(
        "reconciling %s to %s: %d days, %d users, %d messages against %s",
        day_text(from_day),
        day_text(to_day),
        to_day - from_day + 1,
        len(snapshot.users()),
        len(snapshot.messages(from_day, to_day)),
        api_url,
    )
    return compare(snapshot, reader or HttpLiveReader(api_url), from_day, to_day)


def compare(
    snapshot: BatchSnapshot, reader: LiveReader, from_day: int, to_day: int
) -> list[Difference]:
    """Read the live endpoints for the snapshot's keys and list the differences."""
    differences = compare_daily(snapshot, reader, from_day, to_day)
    for user in snapshot.users():
        differences += compare_user(snapshot, reader, user, from_day, to_day)
    for message_id in snapshot.messages(from_day, to_day):
        differences += compare_message(snapshot, reader, message_id, from_day, to_day)
    return sorted(differences, key=_sort_key)


def compare_daily(
    snapshot: BatchSnapshot, reader: LiveReader, from_day: int, to_day: int
) -> list[Difference]:
    differences = []
    for path, fields in DAILY_ENDPOINTS.items():
        live_days = merge_days(list(read_ranges(reader, path, from_day, to_day)))
        for day in range(from_day, to_day + 1):
            text = day_text(day)
            document = snapshot.daily.get(text) or batch_views.daily_document(day, None)
            batch = document["sentiment"] if "sentiment" in path else document
            differences += diff_fields(path, text, fields, batch, live_days.get(text))
    return differences


def compare_user(
    snapshot: BatchSnapshot, reader: LiveReader, user: str, from_day: int, to_day: int
) -> list[Difference]:
    differences = []
    quoted = urllib.parse.quote(user, safe="")
    for name, fields in USER_ENDPOINTS.items():
        path = f"/stats/users/{quoted}/{name}"
        bodies = list(read_ranges(reader, path, from_day, to_day))
        if name == "messages":
            total = snapshot.user_totals.get(user, {}).get("messages", 0)
            differences += diff_fields(
                path, user, ("total",), {"total": total}, bodies[0]
            )
        live_days = merge_days(bodies)
        for day in range(from_day, to_day + 1):
            text = day_text(day)
            batch = snapshot.user_daily.get((user, text)) or {}
            key = f"{user} {text}"
            differences += diff_fields(path, key, fields, batch, live_days.get(text))
    return differences


def compare_message(
    snapshot: BatchSnapshot,
    reader: LiveReader,
    message_id: str,
    from_day: int,
    to_day: int,
) -> list[Difference]:
    totals = snapshot.message_totals.get(message_id, {})
    likes_path = f"/stats/messages/{message_id}/likes"
    bodies = list(read_ranges(reader, likes_path, from_day, to_day))
    differences = diff_fields(
        likes_path, message_id, ("like_count",), totals, bodies[0]
    )
    live_days = merge_days(bodies)
    for day in range(from_day, to_day + 1):
        text = day_text(day)
        batch = snapshot.message_daily.get((message_id, text)) or {}
        key = f"{message_id} {text}"
        differences += diff_fields(
            likes_path, key, ("likes",), batch, live_days.get(text)
        )
    views_path = f"/stats/messages/{message_id}/views"
    body = reader.get(views_path, {})
    differences += diff_fields(
        views_path, message_id, ("view_ms", "views"), totals, body
    )
    return differences


def diff_fields(
    endpoint: str,
    key: str,
    fields: tuple[str, ...],
    batch: dict[str, Any],
    live: dict[str, Any] | None,
) -> list[Difference]:
    """Compare ``fields``; a field missing in the batch document counts as 0.

    A missing live value (``live`` is None or lacks the field) is a difference.
    """
    differences = []
    for name in fields:
        batch_value = batch.get(name) or 0
        live_value = None if live is None else live.get(name)
        if live_value is None or batch_value != live_value:
            differences.append(Difference(endpoint, key, name, batch_value, live_value))
    return differences


def merge_days(bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the ``days`` entries of every body, keyed by their day."""
    days: dict[str, dict[str, Any]] = {}
    for body in bodies:
        days.update({entry["day"]: entry for entry in body.get("days", [])})
    return days


def read_ranges(
    reader: LiveReader, path: str, from_day: int, to_day: int
) -> Iterator[dict[str, Any]]:
    """GET ``path`` for the range, in pieces the endpoints accept."""
    for start in range(from_day, to_day + 1, MAX_RANGE_DAYS):
        end = min(to_day, start + MAX_RANGE_DAYS - 1)
        yield reader.get(path, {"from": day_text(start), "to": day_text(end)})


def format_differences(differences: list[Difference]) -> str:
    """Return the differences as a fixed-width table."""
    header = ("endpoint", "key", "field", "batch", "live")
    rows = [header] + [
        (d.endpoint, d.key, d.field, _text(d.batch), _text(d.live)) for d in differences
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _text(value: Value) -> str:
    return "missing" if value is None else str(value)


def _sort_key(difference: Difference) -> tuple[str, str, str]:
    return (difference.endpoint, difference.key, difference.field)
