"""The HTTP API of a real worker, against the local Kafka and FerretDB.

Every test uses user names of its own, so tests sharing the session's
worker never see each other's likes or messages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from app.auth import mint_token
from app.events import format_micros, new_message_id, now_micros
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

# The agents apply an event well within a second on an idle worker; the
# margin covers a loaded machine.
SETTLE_TIMEOUT_S = 30.0
POLL_S = 0.2
POSITIVE_TEXT = "I love this, it is great!"
EVENT_TOPICS = ("messages", "likes", "views")


class Api:
    """A client of one worker that signs requests as any user."""

    def __init__(self, worker: Worker, session: aiohttp.ClientSession) -> None:
        self.worker = worker
        self.session = session

    def headers(self, user: str) -> dict[str, str]:
        token = mint_token(self.worker.settings, user, ttl_s=600)
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, user: str | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        headers = {**(self.headers(user) if user else {}),
                   **kwargs.pop("headers", {})}
        async with self.session.request(method, self.worker.url + path,
                                        headers=headers, **kwargs) as response:
            raw = await response.read()
            assert response.content_type == "application/json", raw[:200]
            return response.status, orjson.loads(raw)

    async def post_message(self, user: str, body: str) -> dict[str, Any]:
        status, message = await self.call("POST", "/messages", user,
                                          json={"body": body})
        assert status == 201, message
        result: dict[str, Any] = message
        return result

    async def like(self, message_id: str, user: str) -> tuple[int, Any]:
        return await self.call("PUT", f"/messages/{message_id}/likes", user)

    async def unlike(self, message_id: str, user: str) -> tuple[int, Any]:
        return await self.call("DELETE", f"/messages/{message_id}/likes", user)

    async def stored_message(self, message_id: str) -> dict[str, Any]:
        """Wait until the message agent wrote the message; return it."""
        found: dict[str, Any] = {}

        async def written() -> bool:
            status, body = await self.call("GET", f"/messages/{message_id}")
            found.update(body if status == 200 else {})
            return status == 200

        await eventually(written, f"message {message_id} in MongoDB")
        return found

    async def like_count(self, message_id: str) -> int:
        status, body = await self.call("GET", f"/messages/{message_id}")
        assert status == 200, body
        count: int = body["like_count"]
        return count

    async def wait_like_count(self, message_id: str, expected: int) -> None:
        async def settled() -> bool:
            return await self.like_count(message_id) == expected

        await eventually(settled, f"like_count {expected} of {message_id}")


async def eventually(check: Callable[[], Awaitable[bool]], description: str) -> None:
    """Poll ``check`` until it returns True, failing after SETTLE_TIMEOUT_S."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {SETTLE_TIMEOUT_S:.0f} s waiting for {description}"
            )
        await asyncio.sleep(POLL_S)


def unique_user(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def api(running_worker: Worker) -> AsyncIterator[Api]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Api(running_worker, session)


# ---------------------------------------------------------------- messages


async def test_post_then_read_back(api: Api) -> None:
    author = unique_user("author")
    posted = await api.post_message(author, POSITIVE_TEXT)
    assert posted["sentiment"] is None
    assert posted["like_count"] == 0
    assert posted["user"] == author

    stored = await api.stored_message(posted["message_id"])
    expected = SentimentIntensityAnalyzer().polarity_scores(POSITIVE_TEXT)["compound"]
    assert stored["sentiment"] == {"compound": expected, "label": "positive"}
    assert stored["sentiment"]["compound"] == 0.8622
    assert stored["body"] == POSITIVE_TEXT
    assert stored["created_at"] == posted["created_at"]
    assert stored["like_count"] == 0

    status, page = await api.call("GET", f"/users/{author}/messages")
    assert status == 200
    assert page == {"messages": [stored], "next_cursor": None}
    status, feed = await api.call("GET", "/messages", params={"limit": "100"})
    assert status == 200
    assert stored in feed["messages"]


async def test_user_feed_newest_first(api: Api) -> None:
    author = unique_user("author")
    posted = [await api.post_message(author, f"message {n}") for n in range(5)]
    await api.stored_message(posted[-1]["message_id"])
    for message in posted:
        await api.stored_message(message["message_id"])

    status, first = await api.call("GET", f"/users/{author}/messages",
                                   params={"limit": "3"})
    assert status == 200
    status, second = await api.call(
        "GET", f"/users/{author}/messages",
        params={"limit": "3", "cursor": first["next_cursor"]},
    )
    assert status == 200
    ids = [m["message_id"] for m in first["messages"] + second["messages"]]
    assert ids == [m["message_id"] for m in reversed(posted)]
    assert second["next_cursor"] is None


# ---------------------------------------------------------------- likes


async def liked_message(api: Api) -> str:
    message = await api.post_message(unique_user("author"), "like me")
    await api.stored_message(message["message_id"])
    message_id: str = message["message_id"]
    return message_id


async def test_double_like_counts_once(api: Api) -> None:
    message_id = await liked_message(api)
    alice, barrier = unique_user("alice"), unique_user("barrier")
    for _ in range(2):
        status, body = await api.like(message_id, alice)
        assert status == 202
        assert body["state"] == "liked"
    # Likes of one message share a partition, so when the barrier's like is
    # counted every earlier like of the message is applied too.
    await api.like(message_id, barrier)
    await api.wait_like_count(message_id, 2)


async def test_unlike_without_like_no_change(api: Api) -> None:
    message_id = await liked_message(api)
    status, body = await api.unlike(message_id, unique_user("alice"))
    assert status == 202
    assert body["state"] == "not liked"
    await api.like(message_id, unique_user("barrier"))
    await api.wait_like_count(message_id, 1)


async def test_like_unlike_unlike(api: Api) -> None:
    message_id = await liked_message(api)
    alice = unique_user("alice")
    assert (await api.like(message_id, alice))[0] == 202
    assert (await api.unlike(message_id, alice))[0] == 202
    assert (await api.unlike(message_id, alice))[0] == 202
    await api.like(message_id, unique_user("barrier"))
    await api.wait_like_count(message_id, 1)


async def test_like_unlike_like_sequence(api: Api) -> None:
    message_id = await liked_message(api)
    alice, bob = unique_user("alice"), unique_user("bob")
    for method, user in [(api.like, alice), (api.like, bob), (api.unlike, alice),
                         (api.like, alice), (api.unlike, bob)]:
        assert (await method(message_id, user))[0] == 202
    await api.like(message_id, unique_user("barrier"))
    await api.wait_like_count(message_id, 2)
    status, stats = await api.call("GET", f"/stats/messages/{message_id}/likes")
    assert status == 200
    assert stats["like_count"] == 2


async def test_concurrent_likes_of_one_pair(api: Api) -> None:
    message_id = await liked_message(api)
    alice = unique_user("alice")
    results = await asyncio.gather(api.like(message_id, alice),
                                   api.like(message_id, alice))
    assert [status for status, _ in results] == [202, 202]
    await api.like(message_id, unique_user("barrier"))
    await api.wait_like_count(message_id, 2)


async def test_like_right_after_post(api: Api) -> None:
    author, fan = unique_user("author"), unique_user("fan")

    async def post_and_like(n: int) -> tuple[str, int]:
        message = await api.post_message(author, f"fresh {n}")
        status, body = await api.like(message["message_id"], fan)
        assert status == 202, body
        return message["message_id"], status

    results = await asyncio.gather(*(post_and_like(n) for n in range(5)))
    assert [status for _, status in results] == [202] * 5
    for message_id, _ in results:
        await api.wait_like_count(message_id, 1)


async def test_like_unknown_message_404(api: Api) -> None:
    for message_id in [str(uuid.uuid4()), "01000000-0000-7000-8000-000000000000"]:
        started = time.monotonic()
        status, body = await api.like(message_id, unique_user("alice"))
        assert status == 404
        assert body["error"]["field"] == "message_id"
        assert time.monotonic() - started < 2.0


# ---------------------------------------------------------------- bad input


async def end_offsets(worker: Worker) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=worker.settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(worker.topic(name), partition)
            for name in EVENT_TOPICS
            for partition in range(worker.settings.topic_partitions)
        ]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return offsets
    finally:
        await consumer.stop()


def view(message_id: str, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "message_id": message_id,
        "started_at": format_micros(now_micros() - 60_000_000),
        "duration_ms": 1200,
    }
    item.update(changes)
    return item


def bad_requests(
    message_id: str, secret: str
) -> list[tuple[str, str, dict[str, Any], int, str]]:
    """Return (method, path, request options, status, field) of invalid requests."""
    json_type = {"Content-Type": "application/json"}
    expired = jwt.encode({"sub": "alice", "iat": 1, "exp": 2}, secret, "HS256")
    forged = jwt.encode({"sub": "alice", "iat": int(time.time()),
                         "exp": int(time.time()) + 60}, "forged-" + "k" * 60, "HS256")
    epoch_seconds = int(time.time())
    return [
        ("POST", "/messages", {"data": b'{"body": ', "headers": json_type}, 400, "$"),
        ("POST", "/messages", {"data": b"[]", "headers": json_type}, 400, "$"),
        ("POST", "/messages", {"data": b"", "headers": json_type}, 400, "$"),
        ("POST", "/messages", {"json": {"body": 12}}, 400, "body"),
        ("POST", "/messages", {"json": {}}, 400, "body"),
        ("POST", "/messages", {"json": {"body": "x", "user": "bob"}}, 400, "user"),
        ("POST", "/messages", {"data": b'{"body": "x"}',
                               "headers": {"Content-Type": "text/plain"}},
         415, "Content-Type"),
        ("POST", "/messages", {"json": {"body": ""}}, 400, "body"),
        ("POST", "/messages", {"json": {"body": "  "}}, 400, "body"),
        ("POST", "/messages", {"json": {"body": "x" * 1001}}, 400, "body"),
        ("POST", "/messages", {"data": b'{"body": "\\ud800"}', "headers": json_type},
         400, "$"),
        ("POST", "/messages", {"data": b'{"body": NaN}', "headers": json_type},
         400, "$"),
        ("POST", "/messages", {"data": b'{"body": Infinity}', "headers": json_type},
         400, "$"),
        ("POST", "/messages", {"json": {"body": "a\u0000b"}}, 400, "body"),
        ("POST", "/messages",
         {"data": b'{"body": "' + b"x" * (1024 * 1024) + b'"}', "headers": json_type},
         413, "$"),
        ("POST", "/messages", {"json": {"body": "x"},
                               "headers": {"Authorization": f"Bearer {expired}"}},
         401, "Authorization"),
        ("POST", "/views", {"json": {"views": [view(message_id)]},
                            "headers": {"Authorization": f"Bearer {forged}"}},
         401, "Authorization"),
        ("PUT", f"/messages/{message_id}/likes",
         {"headers": {"Authorization": "Basic YWxpY2U6c2VjcmV0"}},
         401, "Authorization"),
        ("POST", "/views", {"json": {"views": []}}, 400, "views"),
        ("POST", "/views", {"json": {"views": [view(message_id)] * 501}}, 400, "views"),
        ("POST", "/views", {"json": {"views": [view(message_id),
                                               view(message_id, duration_ms=0)]}},
         400, "views[1].duration_ms"),
        ("POST", "/views", {"json": {"views": [view(message_id,
                                                    duration_ms=3_600_001)]}},
         400, "views[0].duration_ms"),
        ("POST", "/views", {"json": {"views": [view(
            message_id, started_at=format_micros(now_micros() + 600_000_000))]}},
         400, "views[0].started_at"),
        ("POST", "/views", {"json": {"views": [view(
            message_id, started_at="2020-01-01T00:00:00Z")]}},
         400, "views[0].started_at"),
        ("POST", "/views", {"json": {"views": [view(
            message_id, started_at="2026-12-04T10:00:00")]}},
         400, "views[0].started_at"),
        ("POST", "/views", {"json": {"views": [view(message_id,
                                                    started_at=epoch_seconds)]}},
         400, "views[0].started_at"),
        ("POST", "/views", {"json": {"views": [view(message_id, user="bob")]}},
         400, "views[0].user"),
        ("PUT", "/messages/not-a-uuid/likes", {}, 400, "message_id"),
        ("PUT", f"/messages/{message_id.upper()}/likes", {}, 400, "message_id"),
        ("DELETE", "/messages/123/likes", {}, 400, "message_id"),
        ("PUT", f"/messages/{message_id}/likes", {"json": {"user": "bob"}}, 400, "$"),
        ("PUT", f"/messages/{uuid.uuid4()}/likes", {}, 404, "message_id"),
        ("GET", "/messages", {"params": {"limit": "0"}}, 400, "limit"),
        ("GET", "/messages", {"params": {"limit": "101"}}, 400, "limit"),
        ("GET", "/messages", {"params": {"cursor": "garbage"}}, 400, "cursor"),
        ("GET", "/users/bad%20user/messages", {}, 400, "user"),
        ("GET", "/messages/nope", {}, 400, "message_id"),
        ("GET", "/stats/messages/xyz/likes", {}, 400, "message_id"),
        ("GET", f"/stats/messages/{message_id.upper()}/likes", {}, 400, "message_id"),
        ("GET", "/stats/messages/xyz/views", {}, 400, "message_id"),
    ]


async def test_bad_input_reaches_no_topic(api: Api) -> None:
    message_id = await liked_message(api)
    before = await end_offsets(api.worker)
    for method, path, options, status, field in bad_requests(
        message_id, api.worker.settings.jwt_secret
    ):
        got_status, body = await api.call(method, path, unique_user("bad"), **options)
        case = f"{method} {path} {str(options)[:80]}"
        assert got_status == status, (case, body)
        assert body["error"]["status"] == status, case
        assert body["error"]["field"] == field, (case, body)
        assert body["error"]["message"], case
    assert await end_offsets(api.worker) == before


async def test_missing_token_401(api: Api) -> None:
    status, body = await api.call("POST", "/messages", json={"body": "x"})
    assert status == 401
    assert body["error"]["field"] == "Authorization"


async def test_unknown_route_json(api: Api) -> None:
    status, body = await api.call("GET", "/no/such/route")
    assert status == 404
    assert body["error"]["status"] == 404


# ---------------------------------------------------------------- operations


async def test_health_ok(api: Api) -> None:
    assert await api.call("GET", "/health") == (
        200, {"status": "ok", "kafka": True, "mongodb": True}
    )


async def test_openapi_lists_stats(api: Api) -> None:
    status, document = await api.call("GET", "/openapi.json")
    assert status == 200
    assert "/stats/sentiment/daily" in document["paths"]


async def test_views_counted(api: Api) -> None:
    message_id = await liked_message(api)
    viewer = unique_user("viewer")
    views = [view(message_id, duration_ms=1000), view(message_id, duration_ms=500)]
    status, body = await api.call("POST", "/views", viewer, json={"views": views})
    assert (status, body) == (202, {"accepted": 2})

    async def counted() -> bool:
        status, stats = await api.call("GET", f"/stats/messages/{message_id}/views")
        return status == 200 and stats["views"] == 2 and stats["view_ms"] == 1500

    await eventually(counted, f"2 views of {message_id}")


async def test_metrics_count_rejected_views(api: Api) -> None:
    message_id = new_message_id()
    await api.call("POST", "/views", unique_user("viewer"),
                   json={"views": [view(message_id, duration_ms=0)]})
    async with api.session.get(f"{api.worker.url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert ('socialstream_rejected_events_total{reason="duration_ms",topic="views"}'
            in text)
