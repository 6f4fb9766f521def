"""MongoDB documents of the batch views, and how a backfill replaces them.

A backfill deletes the documents of the per-day collections whose ``day``
is in its range, then inserts the recomputed ones. The totals collections
cover all archived days, so they are replaced whole. ``_id`` values are
built from the keys, so a rerun writes identical documents. The two steps
are not atomic, so a reader can see a day range empty while it is being
rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pymongo.database import Database

from app.events import day_to_date

logger = logging.getLogger(__name__)

BATCH_DAILY = "batch_daily"
BATCH_USER_DAILY = "batch_user_daily"
BATCH_USER_TOTALS = "batch_user_totals"
BATCH_MESSAGE_DAILY = "batch_message_daily"
BATCH_MESSAGE_TOTALS = "batch_message_totals"
DAILY_COLLECTIONS = (BATCH_DAILY, BATCH_USER_DAILY, BATCH_MESSAGE_DAILY)
TOTALS_COLLECTIONS = (BATCH_USER_TOTALS, BATCH_MESSAGE_TOTALS)
INSERT_CHUNK = 1000

Document = dict[str, Any]


def day_text(day: int) -> str:
    return day_to_date(day).isoformat()


def mean_compound(compound_sum: int, count: int) -> float:
    """Return the mean compound score, rounded to 4 places as the live API does."""
    return round(compound_sum / count / 10_000, 4) if count else 0.0


def daily_document(day: int, values: dict[str, int] | None) -> Document:
    """Build the ``batch_daily`` document of one day; None means no events."""
    values = values or {}

    def value(name: str) -> int:
        return int(values.get(name) or 0)

    text = day_text(day)
    return {
        "_id": text,
        "day": text,
        "messages": value("messages"),
        "likes": value("likes"),
        "unlikes": value("unlikes"),
        "view_ms": value("view_ms"),
        "views": value("views"),
        "sentiment": {
            "count": value("s_count"),
            "compound_sum": value("s_sum"),
            "mean_compound": mean_compound(value("s_sum"), value("s_count")),
            "positive": value("positive"),
            "neutral": value("neutral"),
            "negative": value("negative"),
        },
    }


def user_daily_document(row: dict[str, Any]) -> Document:
    text = day_text(row["day"])
    return {
        "_id": f"{row['user']}|{text}",
        "user": row["user"],
        "day": text,
        "messages": int(row["messages"]),
        "likes_given": int(row["likes_given"]),
        "likes_received": int(row["likes_received"]),
        "view_ms": int(row["view_ms"]),
        "views": int(row["views"]),
    }


def user_total_document(row: dict[str, Any]) -> Document:
    return {"_id": row["user"], "user": row["user"], "messages": int(row["messages"])}


def message_daily_document(row: dict[str, Any]) -> Document:
    text = day_text(row["day"])
    return {
        "_id": f"{row['message_id']}|{text}",
        "message_id": row["message_id"],
        "day": text,
        "likes": int(row["likes"]),
    }


def message_total_document(row: dict[str, Any]) -> Document:
    created = row["created_day"]
    return {
        "_id": row["message_id"],
        "message_id": row["message_id"],
        "author": row["author"],
        "created_day": None if created is None else day_text(created),
        "like_count": int(row["like_count"]),
        "view_ms": int(row["view_ms"]),
        "views": int(row["views"]),
    }


def replace_days(
    db: Database[Document],
    collection: str,
    documents: Iterable[Document],
    from_day: int,
    to_day: int,
) -> int:
    """Replace the documents of ``collection`` whose day is in the range.

    Returns the number of documents inserted.
    """
    day_range = {"day": {"$gte": day_text(from_day), "$lte": day_text(to_day)}}
    deleted = db[collection].delete_many(day_range).deleted_count
    inserted = insert_chunks(db, collection, documents)
    logger.info(
        "%s: replaced %d documents of %s to %s with %d",
        collection,
        deleted,
        day_text(from_day),
        day_text(to_day),
        inserted,
    )
    return inserted


def replace_all(
    db: Database[Document], collection: str, documents: Iterable[Document]
) -> int:
    """Replace every document of ``collection``; return the number inserted."""
    deleted = db[collection].delete_many({}).deleted_count
    inserted = insert_chunks(db, collection, documents)
    logger.info("%s: replaced %d documents with %d", collection, deleted, inserted)
    return inserted


def insert_chunks(
    db: Database[Document], collection: str, documents: Iterable[Document]
) -> int:
    inserted = 0
    for chunk in chunked(documents, INSERT_CHUNK):
        db[collection].insert_many(chunk)
        inserted += len(chunk)
    return inserted


def ensure_indexes(db: Database[Document]) -> None:
    db[BATCH_DAILY].create_index("day")
    db[BATCH_USER_DAILY].create_index([("user", 1), ("day", 1)])
    db[BATCH_USER_DAILY].create_index("day")
    db[BATCH_MESSAGE_DAILY].create_index([("message_id", 1), ("day", 1)])
    db[BATCH_MESSAGE_DAILY].create_index("day")


def chunked(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    chunk: list[Document] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
