"""HTTP sender: request building, tokens, and a run against a fake API."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from simulator.config import SimulationConfig
from simulator.http_requests import (
    TokenCache,
    like_request,
    make_token,
    message_request,
    session_shift_us,
    views_request,
)
from simulator.http_sender import plan_steps, send_http
from simulator.records import (
    Record,
    encode,
    event_record,
    format_time,
    like_changed,
    message_posted,
    parse_time,
    view_recorded,
)
from simulator.simulation import simulate
from simulator.truth import compute_truth

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
MESSAGE = "0193abcd-0000-7000-8000-000000000001"
SERVER_ID = "0193abcd-0000-7000-8000-0000000000aa"
BASE = parse_time("2026-12-01T10:00:00Z")
SECOND = 1_000_000


def view_record(
    started_at: int, duration_ms: int, reported_at: int, session: int = 1
) -> Record:
    event = view_recorded(
        str(uuid.uuid4()), MESSAGE, "carol", started_at, duration_ms, reported_at
    )
    return event_record(event, reported_at, session)


# ---------------------------------------------------------------- tokens


def test_token_claims() -> None:
    token = make_token("alice", SECRET, now_s=1_764_000_000)
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims == {"sub": "alice", "iat": 1_764_000_000, "exp": 1_764_003_600}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_cache_reuses_then_renews() -> None:
    cache = TokenCache(SECRET, lifetime_s=600)
    first = cache.token("alice", now_s=1000)
    assert cache.token("alice", now_s=1500) == first
    renewed = cache.token("alice", now_s=1541)
    assert renewed != first
    assert (
        jwt.decode(
            renewed, SECRET, algorithms=["HS256"], options={"verify_exp": False}
        )["iat"]
        == 1541
    )


def test_token_cache_rejects_empty_secret() -> None:
    with pytest.raises(ValueError, match="SOCIALSTREAM_JWT_SECRET"):
        TokenCache("")


def test_bearer_header() -> None:
    header = TokenCache(SECRET).headers("bob")["Authorization"]
    assert header.startswith("Bearer ")
    claims = jwt.decode(header.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"


# ---------------------------------------------------------------- requests


def test_message_request() -> None:
    event = message_posted(str(uuid.uuid4()), MESSAGE, "alice", "hello there", BASE)
    request = message_request(event_record(event, BASE))
    assert request.method == "POST"
    assert request.path == "/messages"
    assert request.user == "alice"
    assert request.json == {"body": "hello there"}


@pytest.mark.parametrize(
    ("event_type", "method"), [("LikeAdded", "PUT"), ("LikeRemoved", "DELETE")]
)
def test_like_request(event_type: Any, method: str) -> None:
    event = like_changed(event_type, str(uuid.uuid4()), MESSAGE, "bob", BASE)
    request = like_request(event_record(event, BASE), SERVER_ID)
    assert request.method == method
    assert request.path == f"/messages/{SERVER_ID}/likes"
    assert request.user == "bob"
    assert request.json is None


def test_views_request_maps_ids_and_shifts() -> None:
    session = [
        view_record(BASE, 1500, BASE + 10 * SECOND),
        view_record(BASE + 2 * SECOND, 800, BASE + 10 * SECOND),
    ]
    request = views_request(session, {MESSAGE: SERVER_ID}, shift_us=60 * SECOND)
    assert request.method == "POST"
    assert request.path == "/views"
    assert request.user == "carol"
    assert request.json == {
        "views": [
            {
                "message_id": SERVER_ID,
                "started_at": "2026-12-01T09:59:00.000000Z",
                "duration_ms": 1500,
            },
            {
                "message_id": SERVER_ID,
                "started_at": "2026-12-01T09:59:02.000000Z",
                "duration_ms": 800,
            },
        ]
    }


def test_views_request_skips_unknown_message() -> None:
    session = [view_record(BASE, 1500, BASE + 10 * SECOND)]
    request = views_request(session, {}, shift_us=0)
    assert request.json == {"views": []}


def test_session_shift() -> None:
    session = [view_record(BASE, 1500, BASE + 10 * SECOND)]
    assert session_shift_us(session, now_us=BASE + 60 * SECOND) == 0
    assert session_shift_us(session, now_us=BASE) == 10 * SECOND


def test_plan_steps_groups_sessions() -> None:
    posted = event_record(
        message_posted(str(uuid.uuid4()), MESSAGE, "alice", "hi", BASE), BASE
    )
    first = view_record(BASE + SECOND, 100, BASE + 5 * SECOND, session=4)
    second = view_record(BASE + 2 * SECOND, 100, BASE + 5 * SECOND, session=4)
    other = view_record(BASE + 3 * SECOND, 100, BASE + 5 * SECOND, session=5)
    duplicate = Record("views", first.key, first.value, first.send_at, "duplicate")
    invalid = Record("likes", posted.key, b"{", BASE, "invalid", "malformed_json")
    steps = plan_steps([posted, first, second, other, duplicate, invalid])
    assert [step.kind for step in steps] == ["message", "views", "views"]
    assert steps[1].records == [first, second]
    assert steps[2].records == [other]
    assert steps[0].message_key == MESSAGE


# ---------------------------------------------------------------- fake API


@dataclass
class FakeApi:
    """An in-memory API that keeps its own like state and view totals."""

    fail_bodies: set[str] = field(default_factory=set)
    created: dict[str, str] = field(default_factory=dict)
    liked: set[tuple[str, str]] = field(default_factory=set)
    like_counts: Counter[str] = field(default_factory=Counter)
    view_ms: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def user(self, request: web.Request) -> str:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return str(jwt.decode(token, SECRET, algorithms=["HS256"])["sub"])

    async def post_message(self, request: web.Request) -> web.Response:
        user = self.user(request)
        body = (await request.json())["body"]
        if body in self.fail_bodies:
            return web.json_response({"error": "injected failure"}, status=503)
        message_id = str(uuid.uuid4())
        self.created[message_id] = user
        self.order[message_id].append("post")
        now = format_time(time.time_ns() // 1000)
        return web.json_response(
            {"message_id": message_id, "created_at": now, "body": body}, status=201
        )

    async def change_like(self, request: web.Request) -> web.Response:
        user = self.user(request)
        message_id = request.match_info["message_id"]
        if message_id not in self.created:
            return web.json_response({"error": "not found"}, status=404)
        self.requests[request.method] += 1
        self.order[message_id].append(f"{request.method} {user}")
        pair = (message_id, user)
        if request.method == "PUT" and pair not in self.liked:
            self.liked.add(pair)
            self.like_counts[message_id] += 1
        elif request.method == "DELETE" and pair in self.liked:
            self.liked.remove(pair)
            self.like_counts[message_id] -= 1
        if request.method == "PUT":
            return web.Response(status=204)
        return web.json_response({"liked": False})

    async def post_views(self, request: web.Request) -> web.Response:
        self.user(request)
        views = (await request.json())["views"]
        limit = time.time_ns() // 1000 + 5 * 60 * SECOND
        for view in views:
            if view["message_id"] not in self.created:
                return web.json_response({"error": "unknown message"}, status=422)
            if parse_time(view["started_at"]) > limit:
                return web.json_response({"error": "view in the future"}, status=422)
        for view in views:
            self.view_ms[view["message_id"]] += view["duration_ms"]
        return web.json_response({"accepted": len(views)}, status=202)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/messages", self.post_message)
        app.router.add_put("/messages/{message_id}/likes", self.change_like)
        app.router.add_delete("/messages/{message_id}/likes", self.change_like)
        app.router.add_post("/views", self.post_views)
        return app


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakeApi, str]]:
    api = FakeApi()
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield api, str(server.make_url("/")).rstrip("/")
    finally:
        await server.close()


SMALL = SimulationConfig(seed=11, users=8, days=2, messages_per_day=15)


async def test_send_http_truth_matches_server(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    simulation = simulate(SMALL)
    run = await send_http(simulation.events, url, SECRET, concurrency=4)
    truth = compute_truth(run.records, users=simulation.plan.users)
    likes = truth["figures"]["message_likes"]
    views = truth["figures"]["message_views"]

    assert sum(run.report.failed.values()) == 0
    assert len(api.created) == 30
    assert set(truth["message_ids"]) == set(api.created)
    assert sorted(run.message_ids.values()) == sorted(api.created)
    for message_id in api.created:
        assert likes[message_id]["like_count"] == api.like_counts[message_id]
        assert views[message_id]["view_ms"] == api.view_ms[message_id]
    assert truth["sent"]["likes"]["total"] == sum(api.requests.values())
    assert truth["sent"]["views"]["invalid"] == 0


async def test_send_http_keeps_like_order(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    simulation = simulate(SMALL)
    run = await send_http(simulation.events, url, SECRET, concurrency=8)
    planned: dict[str, list[str]] = defaultdict(list)
    for record in simulation.events:
        if record.kind != "valid":
            continue
        event = record.payload()
        server_id = run.message_ids[event["message_id"]]
        if record.topic == "messages":
            planned[server_id].append("post")
        elif record.topic == "likes":
            method = "PUT" if event["type"] == "LikeAdded" else "DELETE"
            planned[server_id].append(f"{method} {event['user']}")
    assert dict(api.order) == dict(planned)


async def test_send_http_failed_message_skips_its_events(
    fake_api: tuple[FakeApi, str],
) -> None:
    api, url = fake_api
    posted = message_posted(str(uuid.uuid4()), MESSAGE, "alice", "fail me", BASE)
    liked = like_changed("LikeAdded", str(uuid.uuid4()), MESSAGE, "bob", BASE + SECOND)
    viewed = view_record(BASE + 2 * SECOND, 100, BASE + 3 * SECOND)
    api.fail_bodies.add("fail me")
    records = [
        event_record(posted, BASE),
        event_record(liked, BASE + SECOND),
        viewed,
    ]
    run = await send_http(records, url, SECRET)
    assert run.records == []
    assert run.report.failed["messages"] == 1
    assert run.report.sent["likes"] == 0
    assert api.requests["PUT"] == 0


async def test_send_http_views_not_in_future(fake_api: tuple[FakeApi, str]) -> None:
    api, url = fake_api
    now = time.time_ns() // 1000
    posted = message_posted(str(uuid.uuid4()), MESSAGE, "alice", "hello", now)
    # Planned an hour ahead of the wall clock: the sender moves it to now.
    viewed = view_record(now + 3600 * SECOND, 900, now + 3601 * SECOND)
    run = await send_http([event_record(posted, now), viewed], url, SECRET)
    assert run.report.failed["views"] == 0
    view_events = [r.payload() for r in run.records if r.topic == "views"]
    assert len(view_events) == 1
    started_at = parse_time(view_events[0]["started_at"])
    reported_at = parse_time(view_events[0]["occurred_at"])
    # The session keeps its planned report delay of one second after start.
    assert reported_at - started_at == SECOND
    assert now <= reported_at <= time.time_ns() // 1000


def test_records_encode_roundtrip() -> None:
    event = like_changed("LikeAdded", str(uuid.uuid4()), MESSAGE, "bob", BASE)
    assert event_record(event, BASE).value == encode(event)
