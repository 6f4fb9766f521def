"""The feed store's writes against the stack's MongoDB-compatible server."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from app.settings import Settings
from app.store import FeedStore, MessageDocument

pytestmark = pytest.mark.integration


@pytest.fixture
async def store() -> AsyncIterator[FeedStore]:
    settings = dataclasses.replace(
        Settings.from_env(), mongo_db=f"storetest_{uuid.uuid4().hex[:8]}"
    )
    feed_store = FeedStore(settings)
    yield feed_store
    await feed_store.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    await client.drop_database(settings.mongo_db)
    await client.close()


def document(message_id: str, body: str = "hello") -> MessageDocument:
    return MessageDocument(
        message_id=message_id,
        user="ann",
        body=body,
        created_us=1_700_000_000_000_000,
        compound=0.5,
        label="positive",
        event_id=f"event-{message_id}",
    )


async def test_redelivered_message_keeps_like_count(store: FeedStore) -> None:
    await store.upsert_messages([document("m1")])
    await store.set_like_counts({"m1": 3})
    # A redelivery of m1 comes with a new message in the same batch.
    await store.upsert_messages([document("m1"), document("m2", body="second")])

    first = await store.get_message("m1")
    second = await store.get_message("m2")
    assert first is not None
    assert second is not None
    assert first["like_count"] == 3
    assert first["body"] == "hello"
    assert second["like_count"] == 0
    assert second["body"] == "second"


async def test_like_counts_of_250_messages(store: FeedStore) -> None:
    # FerretDB 1.24 never finishes an update command of 100 statements or
    # more, so the store must split this call, or it times out.
    ids = [f"m{index:03d}" for index in range(250)]
    await store.upsert_messages([document(message_id) for message_id in ids])
    counts = {message_id: index for index, message_id in enumerate(ids)}
    await store.set_like_counts(counts)

    for index in (0, 15, 16, 99, 100, 249):
        stored = await store.get_message(ids[index])
        assert stored is not None
        assert stored["like_count"] == index
