"""The feed in MongoDB, through PyMongo's asyncio API.

One document per message in the ``messages`` collection, keyed by
``message_id``. The message agent upserts the message with its sentiment,
and the like agent sets ``like_count`` to the absolute value from its table,
so replaying either agent rewrites the same document. Feed order is
``created_us`` descending, then ``_id`` descending: message ids are unique,
so the order is total and cursor pagination never repeats or skips a message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pymongo import DESCENDING, AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from app.events import format_micros
from app.settings import Settings

logger = logging.getLogger(__name__)

MESSAGES = "messages"
# MongoDB's error code for an insert whose _id is taken.
DUPLICATE_KEY = 11000
# Every operation fails after this long instead of hanging; writers retry.
OPERATION_TIMEOUT_MS = 20_000
# Updates sent per update command. FerretDB 1.24 (SQLite) keeps a connection
# open for each statement of an update command until the command ends, and
# its pool has 100 connections per database. So a command of 100 updates by
# _id never finishes, and neither does anything else on that database.
# A command of 16 needs up to 17 connections, so five writers at once fit.
UPDATES_PER_COMMAND = 16
FEED_INDEX = [("created_us", DESCENDING), ("_id", DESCENDING)]
USER_INDEX = [("user", DESCENDING), ("created_us", DESCENDING), ("_id", DESCENDING)]


# Pages kept for reuse; when there are more, the oldest is dropped first.
MAX_RECENT_PAGES = 1024
# A page read: (user, or None for the feed; limit; cursor).
PageKey = tuple[str | None, int, str | None]


class InvalidCursor(ValueError):
    """A pagination cursor that does not decode to a feed position."""


@dataclass(frozen=True, slots=True)
class MessageDocument:
    message_id: str
    user: str
    body: str
    created_us: int
    compound: float
    label: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class FeedStore:
    """Reads and writes of the feed; open with :meth:`start`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._indexed = False
        self._index_lock: asyncio.Lock | None = None
        self._write_lock: asyncio.Lock | None = None
        # Page reads in flight, and the latest completed ones with the
        # monotonic time each returned, by (user, limit, cursor); see _shared_read.
        self._reads: dict[PageKey, asyncio.Task[Page]] = {}
        self._recent: OrderedDict[PageKey, tuple[float, Page]] = OrderedDict()

    async def start(self) -> None:
        """Create the indexes; the client itself connects on first use."""
        await self._ensure_indexes_once()
        logger.info("feed store ready in database %s", self._settings.mongo_db)

    async def _ensure_indexes_once(self) -> None:
        # FerretDB 1.24 on SQLite can deadlock when a collection is created by
        # a write while createIndex runs on it, so every write waits for the
        # indexes first.
        if self._indexed:
            return
        if self._index_lock is None:
            self._index_lock = asyncio.Lock()
        async with self._index_lock:
            if not self._indexed:
                await self.ensure_indexes()
                self._indexed = True

    async def _write(self, operations: Sequence[InsertOne[Any] | UpdateOne]) -> None:
        await self._ensure_indexes_once()
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        # One bulk write at a time per process: SQLite, under FerretDB, has a
        # single writer, and concurrent writers only queue up inside it.
        async with self._write_lock:
            await self._messages.bulk_write(operations, ordered=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def _messages(self) -> Any:
        if self._client is None:
            self._client = AsyncMongoClient(
                self._settings.mongo_url,
                serverSelectionTimeoutMS=5000,
                timeoutMS=OPERATION_TIMEOUT_MS,
            )
        return self._client[self._settings.mongo_db][MESSAGES]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index(FEED_INDEX, name="feed_order")
        await self._messages.create_index(USER_INDEX, name="user_order")

    async def ping(self) -> bool:
        try:
            await self._messages.database.client.admin.command("ping")
        except PyMongoError as error:
            logger.warning("MongoDB ping failed: %s", error)
            return False
        return True

    # ------------------------------------------------------------ writes

    async def upsert_messages(self, documents: Sequence[MessageDocument]) -> None:
        """Insert messages with ``like_count`` 0; a message already stored is kept.

        The message agent rejects a second post of a known message id, so a
        stored message is a redelivery of the same post, and its like count
        must stay. Inserts, not upserts: FerretDB 1.24 on SQLite takes time
        that grows with the collection for each update by ``_id`` (1.3 s for
        100 upserts at 3,000 messages, 4 ms for 100 inserts).
        """
        if not documents:
            return
        operations = [
            InsertOne(
                {
                    "_id": doc.message_id,
                    "user": doc.user,
                    "body": doc.body,
                    "created_us": doc.created_us,
                    "sentiment": {"compound": doc.compound, "label": doc.label},
                    "event_id": doc.event_id,
                    "like_count": 0,
                }
            )
            for doc in documents
        ]
        try:
            await self._write(operations)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            logger.info(
                "%d of %d messages were stored already", len(errors), len(documents)
            )

    async def set_like_counts(self, counts: Mapping[str, int]) -> None:
        """Set each message's ``like_count`` to the given absolute value."""
        # NOTE: FerretDB 1.24 (SQLite) indexes _id on the expression
        # _ferretdb_sjson->"_id" but filters on _ferretdb_sjson->'$._id', so
        # SQLite scans the whole collection for each update by _id. At scale
        # these writes bound the like agent there. MongoDB uses its _id index.
        operations = [
            UpdateOne({"_id": message_id}, {"$set": {"like_count": count}})
            for message_id, count in counts.items()
        ]
        for start in range(0, len(operations), UPDATES_PER_COMMAND):
            await self._write(operations[start : start + UPDATES_PER_COMMAND])

    # ------------------------------------------------------------ reads

    async def get_message(self, message_id: str) -> dict[str, Any] | None:
        document = await self._messages.find_one({"_id": message_id})
        return None if document is None else to_api(document)

    async def feed(self, limit: int, cursor: str | None = None) -> Page:
        return await self._shared_read(
            (None, limit, cursor), lambda: self._page({}, limit, cursor)
        )

    async def user_messages(
        self, user: str, limit: int, cursor: str | None = None
    ) -> Page:
        return await self._shared_read(
            (user, limit, cursor), lambda: self._page({"user": user}, limit, cursor)
        )

    async def _shared_read(
        self, key: PageKey, read: Callable[[], Coroutine[Any, Any, Page]]
    ) -> Page:
        """Return a recent page for ``key``, or run ``read`` or join it.

        A popular page is requested many times at once, and FerretDB 1.24 on
        SQLite sorts the whole collection for every page, because it pushes
        down only ``_id`` filters and ``$natural`` order. So one query per
        page runs at a time, and concurrent requests share its result. The
        result is returned for identical requests for ``feed_cache_ms`` after
        its query returned. Until ``feed_stale_ms``, it is still returned at
        once while a new query runs in the background (stale-while-revalidate).
        A page is thus at most ``max(feed_cache_ms, feed_stale_ms)`` plus one
        query time behind the database.
        """
        recent = self._recent.get(key)
        if recent is not None:
            age_ms = (time.monotonic() - recent[0]) * 1000.0
            if age_ms < self._settings.feed_cache_ms:
                return recent[1]
            if age_ms < self._settings.feed_stale_ms:
                self._start_read(key, read)
                return recent[1]
        # A cancelled request must not cancel the query that others await.
        return await asyncio.shield(self._start_read(key, read))

    def _start_read(
        self, key: PageKey, read: Callable[[], Coroutine[Any, Any, Page]]
    ) -> asyncio.Task[Page]:
        """Return the read of ``key`` in flight, starting one if there is none."""
        task = self._reads.get(key)
        if task is None:
            task = asyncio.create_task(read())
            self._reads[key] = task
            task.add_done_callback(lambda done: self._read_done(key, done))
        return task

    def _read_done(self, key: PageKey, task: asyncio.Task[Page]) -> None:
        if self._reads.get(key) is task:
            del self._reads[key]
        if task.cancelled():
            return
        # Retrieving the error also keeps asyncio from logging it as never
        # retrieved, when no request awaited the read.
        error = task.exception()
        if error is not None:
            if not isinstance(error, InvalidCursor):
                logger.warning("feed page read failed for %s: %r", key, error)
            return
        if self._settings.feed_cache_ms == 0 and self._settings.feed_stale_ms == 0:
            return
        self._recent[key] = (time.monotonic(), task.result())
        self._recent.move_to_end(key)
        while len(self._recent) > MAX_RECENT_PAGES:
            self._recent.popitem(last=False)

    async def _page(
        self, query: dict[str, Any], limit: int, cursor: str | None
    ) -> Page:
        if cursor is not None:
            created_us, message_id = decode_cursor(cursor)
            query = {
                **query,
                "$or": [
                    {"created_us": {"$lt": created_us}},
                    {"created_us": created_us, "_id": {"$lt": message_id}},
                ],
            }
        found = self._messages.find(query).sort(FEED_INDEX).limit(limit + 1)
        documents = [doc async for doc in found]
        next_cursor = None
        if len(documents) > limit:
            documents = documents[:limit]
            last = documents[-1]
            next_cursor = encode_cursor(last["created_us"], last["_id"])
        return Page([to_api(doc) for doc in documents], next_cursor)


def to_api(document: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a stored message into the API's representation."""
    return {
        "message_id": document["_id"],
        "user": document["user"],
        "body": document["body"],
        "created_at": format_micros(document["created_us"]),
        "like_count": document.get("like_count", 0),
        "sentiment": document["sentiment"],
    }


def encode_cursor(created_us: int, message_id: str) -> str:
    raw = orjson.dumps([created_us, message_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_us, message_id = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise InvalidCursor(cursor) from None
    if not isinstance(created_us, int) or not isinstance(message_id, str):
        raise InvalidCursor(cursor)
    return created_us, message_id
