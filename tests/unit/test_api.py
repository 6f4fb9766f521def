"""The HTTP API's handlers against an in-memory store and publisher.

The aiohttp application here carries only the API's routes and middleware,
with fakes in place of MongoDB and Kafka, so every status and error body
can be checked without services. tests/integration/test_api.py runs the
same routes in a real worker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaTimeoutError
from faust.exceptions import ProducerSendError
from pymongo.errors import ServerSelectionTimeoutError

import app.api.context as context_module
import app.api.likes as likes_module
from app.api.context import ApiContext, KafkaProbe
from app.api.inputs import MAX_BODY_BYTES
from app.api.routes import install_api
from app.events import (
    MICROS_PER_DAY,
    Event,
    format_micros,
    new_event_id,
    new_message_id,
    uuid7_millis,
)
from app.metrics import REJECTED, counters
from app.settings import Settings
from app.store import Page, encode_cursor

Headers = Callable[..., dict[str, str]]
JSON_TYPE = {"Content-Type": "application/json"}
# 2026-12-04T10:15:00Z, the fake clock's time.
NOW_S = 1_796_379_300.0
NOW_US = int(NOW_S * 1_000_000)
# Start of the oldest UTC day that the default 30-day retention keeps.
RETENTION_START_US = (NOW_US // MICROS_PER_DAY - 29) * MICROS_PER_DAY


def uuid7_at(seconds: float) -> str:
    """Return a UUIDv7 whose timestamp is ``seconds`` since the epoch."""
    millis = int(seconds * 1000)
    value = (millis << 80) | (0x7 << 76) | (0b10 << 62) | 12345
    return str(uuid.UUID(int=value))


def stored(message_id: str, user: str = "alice", created_us: int = NOW_US) -> Any:
    return {
        "message_id": message_id,
        "user": user,
        "body": "hello",
        "created_at": format_micros(created_us),
        "like_count": 0,
        "sentiment": {"compound": 0.0, "label": "neutral"},
    }


@dataclass
class FakeStore:
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthy: bool = True
    failure: Exception | None = None
    pages: list[tuple[str | None, int, str | None]] = field(default_factory=list)

    async def ping(self) -> bool:
        return self.healthy

    async def get_message(self, message_id: str) -> dict[str, Any] | None:
        self._maybe_fail()
        return self.messages.get(message_id)

    async def feed(self, limit: int, cursor: str | None = None) -> Page:
        self._maybe_fail()
        self.pages.append((None, limit, cursor))
        return Page(list(self.messages.values())[:limit], encode_cursor(1, "x"))

    async def user_messages(
        self, user: str, limit: int, cursor: str | None = None
    ) -> Page:
        self._maybe_fail()
        self.pages.append((user, limit, cursor))
        items = [m for m in self.messages.values() if m["user"] == user]
        return Page(items[:limit], None)

    def _maybe_fail(self) -> None:
        if self.failure is not None:
            raise self.failure


@dataclass
class FakeKafka:
    published: list[Event] = field(default_factory=list)
    healthy: bool = True
    failure: Exception | None = None
    delay_s: float = 0.0

    async def publish(self, event: Event) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failure is not None:
            raise self.failure
        self.published.append(event)

    async def ping(self) -> bool:
        return self.healthy


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    store: FakeStore
    kafka: FakeKafka
    headers: Headers

    async def post(
        self,
        path: str,
        body: Any,
        user: str = "alice",
        headers: dict[str, str] | None = None,
    ) -> Any:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        all_headers = {**JSON_TYPE, **self.headers(user), **(headers or {})}
        return await self.client.post(path, data=raw, headers=all_headers)


@pytest.fixture
async def api(api_settings: Settings, bearer: Headers) -> AsyncIterator[Harness]:
    store, kafka = FakeStore(), FakeKafka()
    context = ApiContext(
        settings=api_settings,
        store=store,
        publish_one=kafka.publish,
        kafka_ping=kafka.ping,
        clock=lambda: NOW_S,
    )
    web_app = web.Application()
    install_api(web_app, context)
    async with TestClient(TestServer(web_app)) as client:
        yield Harness(client, store, kafka, bearer)


async def error_of(response: Any, status: int) -> dict[str, Any]:
    """Check the status and JSON error body of ``response``; return its error."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "field", "message"}
    assert body["error"]["status"] == status
    error: dict[str, Any] = body["error"]
    return error


# ---------------------------------------------------------------- POST /messages


async def test_post_message_created(api: Harness) -> None:
    response = await api.post("/messages", {"body": "Hello there"})
    assert response.status == 201
    body = await response.json()
    [event] = api.kafka.published
    assert body == {
        "message_id": event.message_id,
        "user": "alice",
        "body": "Hello there",
        "created_at": format_micros(NOW_US),
        "like_count": 0,
        "sentiment": None,
    }
    assert response.headers["Location"] == f"/messages/{event.message_id}"
    assert event.type == "MessagePosted"
    assert event.user == "alice"
    assert event.created_at == event.occurred_at == NOW_US
    assert uuid.UUID(event.message_id).version == 7
    assert uuid.UUID(event.event_id).version == 4


@pytest.mark.parametrize("text", ["x" * 1000, "😀" * 1000, "é\u200bü"])
async def test_post_message_limits_accepted(api: Harness, text: str) -> None:
    response = await api.post("/messages", {"body": text})
    assert response.status == 201
    assert api.kafka.published[0].body == text


@pytest.mark.parametrize(
    ("raw", "status", "field", "message"),
    [
        (b'{"body": ', 400, "$", "is not valid JSON at character 9: unexpected end"),
        (b"[1, 2]", 400, "$", "the request body must be a JSON object"),
        (b'"text"', 400, "$", "the request body must be a JSON object"),
        (b"", 400, "$", "the request body is empty; send a JSON object"),
        (b'{"body": 5}', 400, "body", "must be a string"),
        (b'{"body": null}', 400, "body", "must be a string"),
        (b'{"body": ["a"]}', 400, "body", "must be a string"),
        (b"{}", 400, "body", "is required"),
        (
            b'{"body": "x", "user": "bob"}',
            400,
            "user",
            "is not a known field; allowed: body",
        ),
        (b'{"body": ""}', 400, "body", "must not be empty or only white space"),
        (b'{"body": " \\n\\t "}', 400, "body", "must not be empty or only white space"),
        (
            orjson.dumps({"body": "x" * 1001}),
            400,
            "body",
            "must be at most 1000 characters, got 1001",
        ),
        (
            b'{"body": "a\\u0000b"}',
            400,
            "body",
            "must not contain NUL characters (U+0000)",
        ),
        (b'{"body": "\\ud800"}', 400, "$", "lone UTF-16 surrogate escape"),
        (b'{"body": "x\\udc00y"}', 400, "$", "lone UTF-16 surrogate escape"),
        (b'{"body": NaN}', 400, "$", "NaN and Infinity are not JSON numbers"),
        (b'{"body": Infinity}', 400, "$", "NaN and Infinity are not JSON numbers"),
        (b'{"body": -Infinity}', 400, "$", "NaN and Infinity are not JSON numbers"),
        (b'{"body": 1e999}', 400, "$", "too large for a 64-bit float"),
        (b'{"body": "\xff"}', 400, "$", "is not valid UTF-8"),
        (b'{"body": "x",}', 400, "$", "trailing comma is not allowed"),
    ],
)
async def test_post_message_bad_input(
    api: Harness, raw: bytes, status: int, field: str, message: str
) -> None:
    error = await error_of(await api.post("/messages", raw), status)
    assert error["field"] == field
    assert message in error["message"]
    assert api.kafka.published == []


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("text/plain", "must be application/json, got 'text/plain'"),
        (
            "application/x-www-form-urlencoded",
            "must be application/json, got 'application/x-www-form-urlencoded'",
        ),
        (
            "application/json; charset=latin-1",
            "the charset must be utf-8, got 'latin-1'",
        ),
    ],
)
async def test_post_message_wrong_content_type(
    api: Harness, content_type: str, message: str
) -> None:
    response = await api.post(
        "/messages", {"body": "x"}, headers={"Content-Type": content_type}
    )
    error = await error_of(response, 415)
    assert error["field"] == "Content-Type"
    assert error["message"] == message
    assert api.kafka.published == []


async def test_post_message_without_content_type(api: Harness) -> None:
    response = await api.client.post(
        "/messages", data=b'{"body": "x"}', headers=api.headers("alice")
    )
    error = await error_of(response, 415)
    assert error["message"] == (
        "must be application/json, got 'application/octet-stream'"
    )


async def test_post_message_charset_utf8_accepted(api: Harness) -> None:
    content_type = {"Content-Type": "application/json; charset=UTF-8"}
    response = await api.post("/messages", {"body": "x"}, headers=content_type)
    assert response.status == 201


async def test_post_message_body_over_limit(api: Harness) -> None:
    raw = b'{"body": "' + b"x" * MAX_BODY_BYTES + b'"}'
    error = await error_of(await api.post("/messages", raw), 413)
    assert error["field"] == "$"
    assert error["message"] == "the request body must be at most 1048576 bytes (1 MiB)"
    assert api.kafka.published == []


async def test_post_message_chunked_over_limit(api: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"body": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    headers = {**JSON_TYPE, **api.headers("alice")}
    response = await api.client.post("/messages", data=chunks(), headers=headers)
    await error_of(response, 413)
    assert api.kafka.published == []


async def test_post_message_counts_rejections(api: Harness) -> None:
    before = counters.value(REJECTED, topic="messages", reason="body")
    await api.post("/messages", {"body": ""})
    after = counters.value(REJECTED, topic="messages", reason="body")
    assert after == before + 1


# ---------------------------------------------------------------- identity


async def test_write_without_token_rejected(api: Harness) -> None:
    response = await api.client.post(
        "/messages", data=b'{"body": "x"}', headers=JSON_TYPE
    )
    error = await error_of(response, 401)
    assert error["field"] == "Authorization"
    assert error["message"] == "is missing; send 'Authorization: Bearer <token>'"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="socialstream"'
    assert api.kafka.published == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic YWxpY2U6cHc=", "must be 'Bearer <token>' with a JSON Web Token"),
        ("Bearer", "must be 'Bearer <token>' with a JSON Web Token"),
        ("Bearer ", "must be 'Bearer <token>' with a JSON Web Token"),
        (
            "Bearer not-a-jwt",
            "the token is invalid: Not enough segments; mint a new one with "
            "'python -m app.cli token USER'",
        ),
    ],
)
async def test_malformed_authorization_rejected(
    api: Harness, header: str, message: str
) -> None:
    response = await api.client.post(
        "/messages",
        data=b'{"body": "x"}',
        headers={**JSON_TYPE, "Authorization": header},
    )
    error = await error_of(response, 401)
    assert error["message"] == message
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_expired_token_rejected(api: Harness) -> None:
    import jwt

    from tests.conftest import TEST_JWT_SECRET

    token = jwt.encode(
        {"sub": "alice", "iat": 1, "exp": 2}, TEST_JWT_SECRET, algorithm="HS256"
    )
    for method, path in [
        ("POST", "/messages"),
        ("POST", "/views"),
        ("PUT", f"/messages/{new_message_id()}/likes"),
        ("DELETE", f"/messages/{new_message_id()}/likes"),
    ]:
        response = await api.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}
        )
        error = await error_of(response, 401)
        assert error["message"] == "the token has expired; request a new one"
    assert api.kafka.published == []


async def test_forged_token_rejected(api: Harness) -> None:
    import jwt

    token = jwt.encode(
        {"sub": "alice", "iat": 1, "exp": 4_000_000_000},
        "forged-" + "k" * 60,
        algorithm="HS256",
    )
    response = await api.post(
        "/messages", {"body": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    error = await error_of(response, 401)
    assert error["message"] == "the token signature is invalid"


async def test_token_scheme_case_insensitive(api: Harness) -> None:
    token = api.headers("alice")["Authorization"].split(" ", 1)[1]
    response = await api.post(
        "/messages", {"body": "x"}, headers={"Authorization": f"bearer {token}"}
    )
    assert response.status == 201


async def test_writes_without_secret_unavailable(api: Harness) -> None:
    context = api.client.app[context_module.API_CONTEXT]
    headers = api.headers("alice")
    context.settings = Settings(state_dir=context.settings.state_dir, jwt_secret="")
    response = await api.client.post(
        "/messages", data=b'{"body": "x"}', headers={**JSON_TYPE, **headers}
    )
    error = await error_of(response, 503)
    assert "SOCIALSTREAM_JWT_SECRET" in error["message"]


async def test_reads_need_no_token(api: Harness) -> None:
    for path in [
        "/messages",
        "/health",
        "/metrics",
        "/openapi.json",
        "/users/alice/messages",
    ]:
        response = await api.client.get(path)
        assert response.status == 200, path


# ---------------------------------------------------------------- likes


async def test_like_known_message(api: Harness) -> None:
    message_id = new_message_id()
    api.store.messages[message_id] = stored(message_id)
    response = await api.client.put(
        f"/messages/{message_id}/likes", headers=api.headers("bob")
    )
    assert response.status == 202
    [event] = api.kafka.published
    assert await response.json() == {
        "message_id": message_id,
        "user": "bob",
        "state": "liked",
        "event_id": event.event_id,
        "occurred_at": format_micros(NOW_US),
    }
    assert event.type == "LikeAdded"
    assert event.user == "bob"
    assert event.occurred_at == NOW_US


async def test_unlike_known_message(api: Harness) -> None:
    message_id = new_message_id()
    api.store.messages[message_id] = stored(message_id)
    response = await api.client.delete(
        f"/messages/{message_id}/likes", headers=api.headers("bob")
    )
    assert response.status == 202
    assert (await response.json())["state"] == "not liked"
    assert [e.type for e in api.kafka.published] == ["LikeRemoved"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_like_unknown_old_id_at_once(api: Harness, method: str) -> None:
    for message_id in [str(uuid.uuid4()), uuid7_at(NOW_S - 61)]:
        started = asyncio.get_running_loop().time()
        response = await api.client.request(
            method, f"/messages/{message_id}/likes", headers=api.headers("bob")
        )
        elapsed = asyncio.get_running_loop().time() - started
        error = await error_of(response, 404)
        assert error["field"] == "message_id"
        assert error["message"] == f"message {message_id} was not found"
        assert elapsed < 1.0
    assert api.kafka.published == []


async def test_like_waits_for_recent_message(api: Harness) -> None:
    message_id = uuid7_at(NOW_S - 1)

    async def write_later() -> None:
        await asyncio.sleep(0.3)
        api.store.messages[message_id] = stored(message_id)

    writer = asyncio.create_task(write_later())
    response = await api.client.put(
        f"/messages/{message_id}/likes", headers=api.headers("bob")
    )
    await writer
    assert response.status == 202
    assert [e.message_id for e in api.kafka.published] == [message_id]


async def test_like_recent_message_gives_up(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(likes_module, "MESSAGE_WAIT_S", 0.4)
    message_id = uuid7_at(NOW_S - 30)
    started = asyncio.get_running_loop().time()
    response = await api.client.put(
        f"/messages/{message_id}/likes", headers=api.headers("bob")
    )
    elapsed = asyncio.get_running_loop().time() - started
    await error_of(response, 404)
    assert 0.4 <= elapsed < 2.0
    assert api.kafka.published == []


def test_uuid7_helper_timestamp() -> None:
    assert uuid7_millis(uuid7_at(NOW_S)) == int(NOW_S * 1000)


@pytest.mark.parametrize(
    ("message_id", "message"),
    [
        ("not-a-uuid", "must be a UUID, got 'not-a-uuid'"),
        (
            "01930B6E-8B1A-7C3D-9E4F-0123456789AB",
            "must be a lower-case UUID in 8-4-4-4-12 form",
        ),
        (
            "01930b6e8b1a7c3d9e4f0123456789ab",
            "must be a lower-case UUID in 8-4-4-4-12 form",
        ),
    ],
)
async def test_like_malformed_id(api: Harness, message_id: str, message: str) -> None:
    response = await api.client.put(
        f"/messages/{message_id}/likes", headers=api.headers("bob")
    )
    error = await error_of(response, 400)
    assert error["field"] == "message_id"
    assert error["message"] == message
    assert api.kafka.published == []


async def test_like_with_body_rejected(api: Harness) -> None:
    message_id = new_message_id()
    api.store.messages[message_id] = stored(message_id)
    response = await api.client.put(
        f"/messages/{message_id}/likes",
        data=b'{"user": "mallory"}',
        headers={**JSON_TYPE, **api.headers("bob")},
    )
    error = await error_of(response, 400)
    assert error["message"] == "this request takes no body; send none"
    assert api.kafka.published == []


async def test_like_without_token_rejected(api: Harness) -> None:
    response = await api.client.put(f"/messages/{new_message_id()}/likes")
    await error_of(response, 401)


# ---------------------------------------------------------------- views


def view(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "message_id": new_message_id(),
        "started_at": format_micros(NOW_US - 60_000_000),
        "duration_ms": 2500,
    }
    item.update(changes)
    return item


async def test_views_accepted(api: Harness) -> None:
    own_id = new_event_id()
    views = [view(), view(started_at=(NOW_US // 1000) - 5000), view(event_id=own_id)]
    response = await api.post("/views", {"views": views}, user="carol")
    assert response.status == 202
    assert await response.json() == {"accepted": 3}
    events = api.kafka.published
    assert [e.type for e in events] == ["ViewRecorded"] * 3
    assert {e.user for e in events} == {"carol"}
    assert {e.occurred_at for e in events} == {NOW_US}
    assert [e.message_id for e in events] == [v["message_id"] for v in views]
    assert events[0].started_at == NOW_US - 60_000_000
    assert events[1].started_at == NOW_US - 5_000_000
    assert events[0].duration_ms == 2500
    assert events[2].event_id == own_id
    assert len({e.event_id for e in events}) == 3


async def test_views_batch_of_500_accepted(api: Harness) -> None:
    response = await api.post("/views", {"views": [view() for _ in range(500)]})
    assert response.status == 202
    assert len(api.kafka.published) == 500


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "views", "is required"),
        ({"views": [], "user": "x"}, "user", "is not a known field; allowed: views"),
        ({"views": {}}, "views", "must be a JSON array of views"),
        ({"views": []}, "views", "must contain 1 to 500 views, got 0"),
        ({"views": [view()] * 501}, "views", "must contain 1 to 500 views, got 501"),
        ({"views": [view(), 5]}, "views[1]", "must be a JSON object"),
        (
            {"views": [view(user="bob")]},
            "views[0].user",
            "is not a known field; allowed: message_id, started_at, duration_ms, "
            "event_id",
        ),
        (
            {"views": [view(), {"message_id": new_message_id(), "started_at": "x"}]},
            "views[1].duration_ms",
            "is required",
        ),
        (
            {"views": [view(message_id="nope")]},
            "views[0].message_id",
            "must be a UUID, got 'nope'",
        ),
        ({"views": [view(event_id=5)]}, "views[0].event_id", "must be a UUID string"),
        (
            {"views": [view(), view(), view(), view(duration_ms=0)]},
            "views[3].duration_ms",
            "must be greater than 0 and at most 3600000 (one hour), got 0",
        ),
        (
            {"views": [view(duration_ms=-5)]},
            "views[0].duration_ms",
            "must be greater than 0 and at most 3600000 (one hour), got -5",
        ),
        (
            {"views": [view(duration_ms=3_600_001)]},
            "views[0].duration_ms",
            "must be greater than 0 and at most 3600000 (one hour), got 3600001",
        ),
        (
            {"views": [view(duration_ms=1.5)]},
            "views[0].duration_ms",
            "must be an integer number of milliseconds",
        ),
        (
            {"views": [view(duration_ms="100")]},
            "views[0].duration_ms",
            "must be an integer number of milliseconds",
        ),
        (
            {"views": [view(duration_ms=True)]},
            "views[0].duration_ms",
            "must be an integer number of milliseconds",
        ),
        (
            {"views": [view(started_at=format_micros(NOW_US + 300_000_001))]},
            "views[0].started_at",
            "is more than 5 minutes after the time it was reported",
        ),
        (
            {"views": [view(started_at=format_micros(RETENTION_START_US - 1))]},
            "views[0].started_at",
            "is older than the retention period of 30 days",
        ),
        (
            {"views": [view(started_at="2026-12-04T10:14:00")]},
            "views[0].started_at",
            "must be an RFC 3339 timestamp with a UTC offset, such as "
            "2026-12-04T10:15:00.000Z; got '2026-12-04T10:14:00'",
        ),
        (
            {"views": [view(started_at=int(NOW_S))]},
            "views[0].started_at",
            f"{int(NOW_S)} looks like epoch seconds; send epoch milliseconds or an "
            "RFC 3339 string",
        ),
        (
            {"views": [view(started_at=NOW_S * 1000)]},
            "views[0].started_at",
            "must be an RFC 3339 string or epoch milliseconds",
        ),
        (
            {"views": [view(started_at=None)]},
            "views[0].started_at",
            "must be an RFC 3339 string or epoch milliseconds",
        ),
    ],
)
async def test_views_bad_input(
    api: Harness, body: Any, field: str, message: str
) -> None:
    error = await error_of(await api.post("/views", body), 400)
    assert error["field"] == field
    assert error["message"] == message
    assert api.kafka.published == []


async def test_views_on_retention_boundary_accepted(api: Harness) -> None:
    views = [
        view(started_at=format_micros(RETENTION_START_US)),
        view(started_at=format_micros(NOW_US + 300_000_000)),
    ]
    response = await api.post("/views", {"views": views})
    assert response.status == 202


async def test_views_rejection_counted(api: Harness) -> None:
    labels = {"topic": "views", "reason": "duration_ms"}
    before = counters.value(REJECTED, **labels)
    await api.post("/views", {"views": [view(), view(duration_ms=0)]})
    assert counters.value(REJECTED, **labels) == before + 1


async def test_views_unknown_field_label_bounded(api: Harness) -> None:
    labels = {"topic": "views", "reason": "unknown_field"}
    before = counters.value(REJECTED, **labels)
    await api.post("/views", {"views": [view(anything=1)]})
    assert counters.value(REJECTED, **labels) == before + 1


# ---------------------------------------------------------------- reads


async def test_get_message_found(api: Harness) -> None:
    message_id = new_message_id()
    api.store.messages[message_id] = stored(message_id)
    response = await api.client.get(f"/messages/{message_id}")
    assert response.status == 200
    assert await response.json() == stored(message_id)


async def test_get_message_missing(api: Harness) -> None:
    message_id = new_message_id()
    error = await error_of(await api.client.get(f"/messages/{message_id}"), 404)
    assert error["field"] == "message_id"


async def test_get_message_malformed_id(api: Harness) -> None:
    error = await error_of(await api.client.get("/messages/12345"), 400)
    assert error["field"] == "message_id"


async def test_feed_defaults(api: Harness) -> None:
    message_id = new_message_id()
    api.store.messages[message_id] = stored(message_id)
    response = await api.client.get("/messages")
    assert response.status == 200
    assert await response.json() == {
        "messages": [stored(message_id)],
        "next_cursor": encode_cursor(1, "x"),
    }
    assert api.store.pages == [(None, 20, None)]


async def test_feed_passes_limit_and_cursor(api: Harness) -> None:
    cursor = encode_cursor(NOW_US, new_message_id())
    response = await api.client.get(
        "/messages", params={"limit": "100", "cursor": cursor}
    )
    assert response.status == 200
    assert api.store.pages == [(None, 100, cursor)]


async def test_user_feed_passes_user(api: Harness) -> None:
    response = await api.client.get(
        "/users/bob.b@x-y_z/messages", params={"limit": "1"}
    )
    assert response.status == 200
    assert api.store.pages == [("bob.b@x-y_z", 1, None)]


@pytest.mark.parametrize("path", ["/messages", "/users/alice/messages"])
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("limit=0", "limit", "must be an integer from 1 to 100, got '0'"),
        ("limit=101", "limit", "must be an integer from 1 to 100, got '101'"),
        ("limit=-1", "limit", "must be an integer from 1 to 100, got '-1'"),
        ("limit=1.5", "limit", "must be an integer from 1 to 100, got '1.5'"),
        ("limit=abc", "limit", "must be an integer from 1 to 100, got 'abc'"),
        ("limit=", "limit", "must be an integer from 1 to 100, got ''"),
        (
            "limit=99999999999",
            "limit",
            "must be an integer from 1 to 100, got '99999999999'",
        ),
        ("limit=1&limit=2", "limit", "must be given at most once"),
        (
            "cursor=abc",
            "cursor",
            "is not a cursor returned as next_cursor by this endpoint",
        ),
        (
            "cursor=",
            "cursor",
            "is not a cursor returned as next_cursor by this endpoint",
        ),
        (
            "cursor=WyJhIiwxXQ",
            "cursor",
            "is not a cursor returned as next_cursor by this endpoint",
        ),
        ("page=2", "page", "is not a known query parameter; allowed: limit, cursor"),
    ],
)
async def test_page_query_rejected(
    api: Harness, path: str, query: str, field: str, message: str
) -> None:
    error = await error_of(await api.client.get(f"{path}?{query}"), 400)
    assert error["field"] == field
    assert error["message"] == message
    assert api.store.pages == []


async def test_user_feed_invalid_user(api: Harness) -> None:
    error = await error_of(await api.client.get("/users/bad%20name/messages"), 400)
    assert error["field"] == "user"


# ---------------------------------------------------------------- failures


async def test_mongodb_failure_unavailable(api: Harness) -> None:
    api.store.failure = ServerSelectionTimeoutError("no servers")
    for path in ["/messages", f"/messages/{new_message_id()}"]:
        error = await error_of(await api.client.get(path), 503)
        assert error["message"] == "MongoDB is not available; retry later"


@pytest.mark.parametrize(
    "failure", [KafkaTimeoutError(), ProducerSendError("Error while sending")]
)
async def test_kafka_failure_unavailable(api: Harness, failure: Exception) -> None:
    api.kafka.failure = failure
    error = await error_of(await api.post("/messages", {"body": "x"}), 503)
    assert error["message"].startswith("writing to Kafka failed")


async def test_kafka_timeout_unavailable(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context_module, "PUBLISH_TIMEOUT_S", 0.2)
    api.kafka.delay_s = 5.0
    error = await error_of(await api.post("/views", {"views": [view()]}), 503)
    assert "did not acknowledge the write" in error["message"]


async def test_unexpected_error_json_500(
    api: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    api.store.failure = ZeroDivisionError("boom")
    with caplog.at_level(logging.ERROR, logger="app.api.middleware"):
        response = await api.client.get("/messages")
    error = await error_of(response, 500)
    error_id = error["message"].rsplit(" ", 1)[1]
    assert error["message"].startswith("internal server error; the server logged it")
    [record] = caplog.records
    assert error_id in record.getMessage()
    assert record.exc_info is not None
    assert "boom" not in error["message"]


async def test_unknown_route_json_404(api: Harness) -> None:
    error = await error_of(await api.client.get("/nothing/here"), 404)
    assert error["message"] == (
        "no route matches /nothing/here; GET /openapi.json lists the routes"
    )


async def test_wrong_method_json_405(api: Harness) -> None:
    response = await api.client.patch("/messages")
    error = await error_of(response, 405)
    assert "GET" in response.headers["Allow"]
    assert error["message"].startswith("method PATCH is not allowed here")


# ---------------------------------------------------------------- operations


async def test_health_ok(api: Harness) -> None:
    response = await api.client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "kafka": True, "mongodb": True}


@pytest.mark.parametrize(
    ("kafka", "mongodb"), [(False, True), (True, False), (False, False)]
)
async def test_health_names_failure(api: Harness, kafka: bool, mongodb: bool) -> None:
    api.kafka.healthy, api.store.healthy = kafka, mongodb
    response = await api.client.get("/health")
    assert response.status == 503
    assert await response.json() == {
        "status": "unavailable",
        "kafka": kafka,
        "mongodb": mongodb,
    }


async def test_metrics_prometheus_text(api: Harness) -> None:
    await api.post("/views", {"views": [view(duration_ms=0)]})
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == (
        "text/plain; version=0.0.4; charset=utf-8"
    )
    text = await response.text()
    assert f"# TYPE {REJECTED} counter" in text
    assert f'{REJECTED}{{reason="duration_ms",topic="views"}}' in text


async def test_openapi_served(api: Harness) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert "/messages/{message_id}/likes" in document["paths"]


async def test_kafka_probe_unreachable_broker() -> None:
    # A port bound here without listen() refuses connections.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        probe = KafkaProbe(f"127.0.0.1:{port}")
        assert await probe.ping() is False
        assert await probe.ping() is False
        await probe.close()
