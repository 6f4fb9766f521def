"""verify against a fake stats API that serves a truth document's figures."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from simulator.config import SimulationConfig
from simulator.simulation import simulate
from simulator.verify import Difference, VerifyError, check_truth, verify

TODAY = date(2026, 12, 3)


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    config = SimulationConfig(seed=5, users=6, days=2, messages_per_day=10)
    return simulate(config, today=TODAY).truth


def day_span(request: web.Request) -> list[str]:
    first = date.fromisoformat(request.query["from"])
    last = date.fromisoformat(request.query["to"])
    return [
        (first + timedelta(days=number)).isoformat()
        for number in range((last - first).days + 1)
    ]


def stats_app(
    figures: dict[str, Any], missing_users: set[str], drop_day: str | None
) -> web.Application:
    """Serve ``figures`` the way docs/analytics.md describes the endpoints.

    Requests for users in ``missing_users`` get 404, and ``drop_day`` is left out of
    the daily totals.
    """
    zero_views = {"view_ms": 0, "views": 0}

    def daily(name: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            rows = [
                {"day": day, **figures[name][day]}
                for day in day_span(request)
                if day != drop_day
            ]
            return web.json_response({"days": rows})

        return handler

    def user_days(name: str, zero: dict[str, int]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            user = request.match_info["user"]
            if user in missing_users:
                return web.json_response({"error": "unknown user"}, status=404)
            days = figures[name][user]["days"]
            rows = [{"day": day, **days.get(day, zero)} for day in day_span(request)]
            return web.json_response({"user": user, "days": rows})

        return handler

    async def user_messages(request: web.Request) -> web.Response:
        user = request.match_info["user"]
        if user in missing_users:
            return web.json_response({"error": "unknown user"}, status=404)
        row = figures["user_messages"][user]
        rows = [
            {"day": day, "messages": row["days"].get(day, 0)}
            for day in day_span(request)
        ]
        return web.json_response({"user": user, "total": row["total"], "days": rows})

    async def message_likes(request: web.Request) -> web.Response:
        message_id = request.match_info["message_id"]
        row = figures["message_likes"][message_id]
        rows = [
            {"day": day, "likes": row["days"].get(day, 0)} for day in day_span(request)
        ]
        return web.json_response(
            {"message_id": message_id, "like_count": row["like_count"], "days": rows}
        )

    async def message_views(request: web.Request) -> web.Response:
        message_id = request.match_info["message_id"]
        row = figures["message_views"].get(message_id, zero_views)
        return web.json_response({"message_id": message_id, **row})

    app = web.Application()
    app.router.add_get("/stats/messages/daily", daily("messages_daily"))
    app.router.add_get("/stats/likes/daily", daily("likes_daily"))
    app.router.add_get("/stats/views/daily", daily("views_daily"))
    app.router.add_get("/stats/sentiment/daily", daily("sentiment_daily"))
    app.router.add_get("/stats/users/{user}/messages", user_messages)
    app.router.add_get(
        "/stats/users/{user}/likes",
        user_days("user_likes", {"likes_given": 0, "likes_received": 0}),
    )
    app.router.add_get("/stats/users/{user}/views", user_days("user_views", zero_views))
    app.router.add_get("/stats/messages/{message_id}/likes", message_likes)
    app.router.add_get("/stats/messages/{message_id}/views", message_views)
    return app


ServeFn = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[ServeFn]:
    servers: list[TestServer] = []

    async def start(
        figures: dict[str, Any],
        missing_users: frozenset[str] = frozenset(),
        drop_day: str | None = None,
    ) -> str:
        app = stats_app(figures, set(missing_users), drop_day)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


async def test_matching_tables_no_differences(
    truth: dict[str, Any], serve: ServeFn
) -> None:
    url = await serve(truth["figures"])
    report = await check_truth(truth, url, concurrency=4)
    assert report.differences == []
    users, messages = len(truth["users"]), len(truth["message_ids"])
    assert report.requests == 4 + 3 * users + 2 * messages
    assert report.checked > 100
    assert report.summary().startswith("OK")


async def test_each_changed_figure_reported(
    truth: dict[str, Any], serve: ServeFn
) -> None:
    figures = copy.deepcopy(truth["figures"])
    day = truth["days"][1]
    user = truth["users"][0]
    message_id = truth["message_ids"][0]
    figures["messages_daily"][day]["messages"] += 1
    figures["sentiment_daily"][day]["compound_sum"] -= 3
    figures["user_messages"][user]["total"] += 2
    figures["message_likes"][message_id]["like_count"] = 99
    figures["message_views"][message_id]["view_ms"] += 5
    url = await serve(figures)

    report = await check_truth(truth, url)
    expected = truth["figures"]
    assert sorted(report.differences, key=str) == sorted(
        [
            Difference(
                "messages_daily.messages",
                day,
                expected["messages_daily"][day]["messages"],
                expected["messages_daily"][day]["messages"] + 1,
            ),
            Difference(
                "sentiment_daily.compound_sum",
                day,
                expected["sentiment_daily"][day]["compound_sum"],
                expected["sentiment_daily"][day]["compound_sum"] - 3,
            ),
            Difference(
                "user_messages.total",
                user,
                expected["user_messages"][user]["total"],
                expected["user_messages"][user]["total"] + 2,
            ),
            Difference(
                "message_likes.like_count",
                message_id,
                expected["message_likes"][message_id]["like_count"],
                99,
            ),
            Difference(
                "message_views.view_ms",
                message_id,
                expected["message_views"][message_id]["view_ms"],
                expected["message_views"][message_id]["view_ms"] + 5,
            ),
        ],
        key=str,
    )
    assert report.summary().startswith("FAILED: 5 of")


async def test_sparse_day_mismatch_reported(
    truth: dict[str, Any], serve: ServeFn
) -> None:
    figures = copy.deepcopy(truth["figures"])
    user = truth["users"][0]
    day = truth["days"][0]
    expected_views = truth["figures"]["user_views"][user]["days"].get(
        day, {"view_ms": 0, "views": 0}
    )
    figures["user_views"][user]["days"][day] = {
        "view_ms": expected_views["view_ms"],
        "views": expected_views["views"] + 1,
    }
    url = await serve(figures)
    report = await check_truth(truth, url)
    assert report.differences == [
        Difference(
            "user_views.days.views",
            f"{user}, {day}",
            expected_views["views"],
            expected_views["views"] + 1,
        )
    ]


async def test_unknown_user_counts_as_zero(
    truth: dict[str, Any], serve: ServeFn
) -> None:
    document = copy.deepcopy(truth)
    figures = document["figures"]
    idle = "idle-user"
    figures["user_messages"][idle] = {"total": 0, "days": {}}
    figures["user_likes"][idle] = {"days": {}}
    figures["user_views"][idle] = {"days": {}}
    busy = max(truth["users"], key=lambda user: figures["user_messages"][user]["total"])
    url = await serve(figures, missing_users=frozenset({idle, busy}))
    report = await check_truth(document, url)
    # A 404 matches the idle user's zeros but not the busy user's figures.
    assert {d.key.split(",")[0] for d in report.differences} == {busy}
    expected_total = figures["user_messages"][busy]["total"]
    assert expected_total > 0
    assert (
        Difference("user_messages.total", busy, expected_total, 0) in report.differences
    )


async def test_missing_day_row_reported(truth: dict[str, Any], serve: ServeFn) -> None:
    day = truth["days"][0]
    url = await serve(truth["figures"], drop_day=day)
    report = await check_truth(truth, url)
    assert {(d.aggregate.split(".")[0], d.key) for d in report.differences} == {
        ("messages_daily", day),
        ("likes_daily", day),
        ("views_daily", day),
        ("sentiment_daily", day),
    }
    assert all(difference.actual is None for difference in report.differences)
    assert len(report.differences) == 1 + 2 + 2 + 6


async def test_skip_global_figures(truth: dict[str, Any], serve: ServeFn) -> None:
    figures = copy.deepcopy(truth["figures"])
    figures["messages_daily"][truth["days"][0]]["messages"] += 10
    url = await serve(figures)
    report = await check_truth(truth, url, global_figures=False)
    assert report.differences == []


async def test_unreachable_api_raises(truth: dict[str, Any]) -> None:
    with pytest.raises(VerifyError, match="could not reach the API"):
        await check_truth(truth, "http://127.0.0.1:9")


def test_verify_sync_wrapper(truth: dict[str, Any]) -> None:
    with pytest.raises(VerifyError):
        verify(truth, "http://127.0.0.1:9")
