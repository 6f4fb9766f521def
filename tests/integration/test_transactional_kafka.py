"""Records produced straight to the event topics, read back through the API.

These are what an outside producer may send: redelivered events, messages
that share one ``created_at``, and records that the agents must reject
into the dead-letter topic without stopping.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from app.events import Event, format_micros, make_event, new_message_id, now_micros
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT_S = 30.0
POLL_S = 0.2
TIED_MESSAGES = 23
PAGE_LIMIT = 4


def unique_user(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}"


class Deployment:
    """A producer to the worker's topics and a client of its API."""

    def __init__(self, worker: Worker, producer: AIOKafkaProducer,
                 session: aiohttp.ClientSession) -> None:
        self.worker = worker
        self.producer = producer
        self.session = session

    async def produce(self, event: Event, *, partition: int | None = None,
                      value: bytes | None = None) -> RecordMetadata:
        """Write ``event`` (or a raw ``value`` under its key) and wait for the ack."""
        metadata: RecordMetadata = await self.producer.send_and_wait(
            self.worker.topic(event.topic),
            key=event.message_id.encode(),
            value=event.to_json() if value is None else value,
            partition=partition,
        )
        return metadata

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.session.get(self.worker.url + path, params=params) as response:
            return response.status, await response.json()

    async def wait_for(self, path: str, expected: dict[str, Any]) -> dict[str, Any]:
        """Poll ``path`` until its body contains every item of ``expected``."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        body: Any = None
        while time.monotonic() < deadline:
            status, body = await self.get(path)
            if status == 200 and expected.items() <= body.items():
                result: dict[str, Any] = body
                return result
            await asyncio.sleep(POLL_S)
        pytest.fail(f"GET {path} did not reach {expected} in {SETTLE_TIMEOUT_S:.0f} s;"
                    f" last body {body}")


@pytest.fixture
async def deployment(running_worker: Worker) -> AsyncIterator[Deployment]:
    producer = AIOKafkaProducer(
        bootstrap_servers=running_worker.settings.kafka_bootstrap, acks="all"
    )
    await producer.start()
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            yield Deployment(running_worker, producer, session)
    finally:
        await producer.stop()


def message_event(user: str, body: str = "hello", *, created_us: int | None = None,
                  message_id: str | None = None) -> Event:
    return make_event(
        "MessagePosted", message_id=message_id or new_message_id(), user=user,
        body=body, occurred_at=created_us,
    )


def like_event(event_type: Any, message_id: str, user: str) -> Event:
    return make_event(event_type, message_id=message_id, user=user)


async def metric(deployment: Deployment, line_start: str) -> int:
    async with deployment.session.get(f"{deployment.worker.url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return int(line.rsplit(" ", 1)[1])
    return 0


# ---------------------------------------------------------------- redelivery


async def test_redelivered_like_counts_once(deployment: Deployment) -> None:
    post = message_event(unique_user("author"))
    await deployment.produce(post)
    await deployment.wait_for(f"/messages/{post.message_id}", {"like_count": 0})

    like = like_event("LikeAdded", post.message_id, unique_user("fan"))
    await deployment.produce(like)
    await deployment.produce(like)
    barrier = like_event("LikeAdded", post.message_id, unique_user("barrier"))
    await deployment.produce(barrier)
    await deployment.wait_for(f"/messages/{post.message_id}", {"like_count": 2})


async def test_redelivered_unlike_after_relike(deployment: Deployment) -> None:
    post = message_event(unique_user("author"))
    await deployment.produce(post)
    fan = unique_user("fan")
    like = like_event("LikeAdded", post.message_id, fan)
    unlike = like_event("LikeRemoved", post.message_id, fan)
    relike = like_event("LikeAdded", post.message_id, fan)
    # The old unlike comes again after the newer like: it must stay applied once.
    for event in [like, unlike, relike, unlike]:
        await deployment.produce(event)
    await deployment.produce(like_event("LikeAdded", post.message_id,
                                        unique_user("barrier")))
    await deployment.wait_for(f"/messages/{post.message_id}", {"like_count": 2})


async def test_redelivered_message_stored_once(deployment: Deployment) -> None:
    author = unique_user("author")
    post = message_event(author, "posted twice")
    duplicates_line = 'socialstream_duplicate_events_total{topic="messages"}'
    before = await metric(deployment, duplicates_line)
    await deployment.produce(post)
    await deployment.produce(post)
    stored = await deployment.wait_for(f"/messages/{post.message_id}",
                                       {"body": "posted twice"})
    assert stored["created_at"] == format_micros(post.occurred_at)

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while await metric(deployment, duplicates_line) < before + 1:
        assert time.monotonic() < deadline, "the duplicate was not counted"
        await asyncio.sleep(POLL_S)
    status, page = await deployment.get(f"/users/{author}/messages")
    assert status == 200
    assert [m["message_id"] for m in page["messages"]] == [post.message_id]
    await deployment.wait_for(f"/stats/users/{author}/messages", {"total": 1})


async def test_redelivered_view_counted_once(deployment: Deployment) -> None:
    post = message_event(unique_user("author"))
    await deployment.produce(post)
    viewed = make_event(
        "ViewRecorded", message_id=post.message_id, user=unique_user("viewer"),
        started_at=now_micros() - 10_000_000, duration_ms=700,
    )
    await deployment.produce(viewed)
    await deployment.produce(viewed)
    later = make_event(
        "ViewRecorded", message_id=post.message_id, user=unique_user("viewer"),
        started_at=now_micros() - 5_000_000, duration_ms=300,
    )
    await deployment.produce(later)
    await deployment.wait_for(f"/stats/messages/{post.message_id}/views",
                              {"views": 2, "view_ms": 1000})


# ---------------------------------------------------------------- pagination


async def page_through(deployment: Deployment, path: str) -> list[dict[str, Any]]:
    """Read every page of ``path`` with PAGE_LIMIT messages per page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params = {"limit": str(PAGE_LIMIT)}
        if cursor is not None:
            params["cursor"] = cursor
        status, page = await deployment.get(path, **params)
        assert status == 200, page
        assert len(page["messages"]) <= PAGE_LIMIT
        items.extend(page["messages"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["messages"]) == PAGE_LIMIT
    pytest.fail(f"{path} did not end after 1000 pages")


def feed_key(message: dict[str, Any]) -> tuple[str, str]:
    # RFC 3339 in UTC with a fixed number of digits sorts like the instant.
    return message["created_at"], message["message_id"]


async def test_pagination_over_tied_times(deployment: Deployment) -> None:
    author = unique_user("tied")
    created_us = now_micros() - 1_000_000
    # Random UUIDs, so the tie-break on message_id does not follow send order.
    events = [message_event(author, f"tie {n}", created_us=created_us,
                            message_id=str(uuid.uuid4()))
              for n in range(TIED_MESSAGES)]
    await asyncio.gather(*(deployment.produce(event) for event in events))
    expected = sorted((e.message_id for e in events), reverse=True)

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        status, page = await deployment.get(f"/users/{author}/messages", limit="100")
        if len(page["messages"]) == TIED_MESSAGES:
            break
        assert time.monotonic() < deadline, f"{len(page['messages'])} stored"
        await asyncio.sleep(POLL_S)

    user_pages = await page_through(deployment, f"/users/{author}/messages")
    assert [m["message_id"] for m in user_pages] == expected
    assert {m["created_at"] for m in user_pages} == {format_micros(created_us)}

    feed = await page_through(deployment, "/messages")
    feed_ids = [m["message_id"] for m in feed]
    assert len(feed_ids) == len(set(feed_ids))
    assert [feed_key(m) for m in feed] == sorted(map(feed_key, feed), reverse=True)
    tied = [m["message_id"] for m in feed if m["user"] == author]
    assert tied == expected
    first = feed_ids.index(expected[0])
    assert feed_ids[first:first + TIED_MESSAGES] == expected


# ---------------------------------------------------------------- dead letters


async def dead_letters(worker: Worker, wanted: int,
                       match: dict[str, Any]) -> list[dict[str, Any]]:
    """Read the dead-letter topic until ``wanted`` records contain ``match``."""
    consumer = AIOKafkaConsumer(
        worker.topic("dead-letters"),
        bootstrap_servers=worker.settings.kafka_bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while len(found) < wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    payload = orjson.loads(record.value)
                    if match.items() <= payload.items():
                        found.append(payload | {"_key": record.key})
    finally:
        await consumer.stop()
    return found


async def test_malformed_record_dead_lettered(deployment: Deployment) -> None:
    topic = deployment.worker.topic("messages")
    author = unique_user("author")
    broken = message_event(author)
    raw = b'{"type": "MessagePosted", "body": '
    written = await deployment.produce(broken, partition=1, value=raw)
    valid = message_event(author, "after the broken record")
    await deployment.produce(valid, partition=1)

    [letter] = await dead_letters(deployment.worker, 1,
                                  {"topic": topic, "partition": 1,
                                   "offset": written.offset})
    assert set(letter) == {"error", "field", "topic", "partition", "offset", "key",
                           "value", "value_base64", "rejected_at_ms", "_key"}
    assert letter["field"] == "$"
    assert letter["error"].startswith("is not valid UTF-8 JSON")
    assert letter["value"] == raw.decode()
    assert letter["key"] == broken.message_id
    assert letter["_key"] == broken.message_id.encode()
    await deployment.wait_for(f"/messages/{valid.message_id}",
                              {"body": "after the broken record"})
    status, body = await deployment.get(f"/messages/{broken.message_id}")
    assert status == 404


async def test_invalid_fields_dead_lettered(deployment: Deployment) -> None:
    topic = deployment.worker.topic("views")
    post = message_event(unique_user("author"))
    value = orjson.loads(make_event(
        "ViewRecorded", message_id=post.message_id, user="viewer",
        started_at=now_micros(), duration_ms=10,
    ).to_json())
    value["duration_ms"] = 0
    written = await deployment.producer.send_and_wait(
        topic, key=post.message_id.encode(), value=orjson.dumps(value), partition=2
    )
    [letter] = await dead_letters(deployment.worker, 1,
                                  {"topic": topic, "partition": 2,
                                   "offset": written.offset})
    assert letter["field"] == "duration_ms"
    assert letter["error"] == (
        "must be greater than 0 and at most 3600000 (one hour), got 0"
    )
