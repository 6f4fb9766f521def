"""Reconciliation logic against a fake of the live endpoints."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any
from urllib.parse import unquote

import pytest

from app.events import date_to_day, day_to_date
from batch_backfill import batch_views
from batch_backfill.reconcile import (
    MAX_RANGE_DAYS,
    BatchSnapshot,
    Difference,
    LiveReadError,
    compare,
    format_differences,
)

D1, D2 = "2026-03-01", "2026-03-02"
M1 = "00000000-0000-4000-8000-0000000000a1"


def day(text: str) -> int:
    from datetime import date

    return date_to_day(date.fromisoformat(text))


def days_between(params: dict[str, str]) -> list[str]:
    return [
        day_to_date(number).isoformat()
        for number in range(day(params["from"]), day(params["to"]) + 1)
    ]


class FakeLive:
    """Fake worker: returns the stats bodies of the worker, built from dictionaries."""

    def __init__(self) -> None:
        self.days: dict[str, dict[str, int]] = defaultdict(dict)
        self.user_days: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.user_totals: dict[str, int] = {}
        self.message_likes: dict[str, int] = {}
        self.message_like_days: dict[tuple[str, str], int] = {}
        self.message_views: dict[str, dict[str, int]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        self.requests.append((path, params))
        parts = path.strip("/").split("/")
        if parts[1] in {"messages", "likes", "views", "sentiment"} and parts[2:] == [
            "daily"
        ]:
            return {"days": [self.day_row(parts[1], d) for d in days_between(params)]}
        if parts[1] == "users":
            return self.user(unquote(parts[2]), parts[3], params)
        if parts[1] == "messages" and parts[3] == "likes":
            return {
                "message_id": parts[2],
                "like_count": self.message_likes.get(parts[2], 0),
                "days": [
                    {"day": d, "likes": self.message_like_days.get((parts[2], d), 0)}
                    for d in days_between(params)
                ],
            }
        if parts[1] == "messages" and parts[3] == "views":
            views = self.message_views.get(parts[2], {})
            return {
                "message_id": parts[2],
                "view_ms": views.get("view_ms", 0),
                "views": views.get("views", 0),
            }
        raise LiveReadError(f"GET {path} returned 404")

    def day_row(self, kind: str, text: str) -> dict[str, Any]:
        values = self.days.get(text, {})
        fields = {
            "messages": ("messages",),
            "likes": ("likes", "unlikes"),
            "views": ("view_ms", "views"),
        }
        if kind == "sentiment":
            count, total = values.get("s_count", 0), values.get("s_sum", 0)
            return {
                "day": text,
                "count": count,
                "compound_sum": total,
                "mean_compound": batch_views.mean_compound(total, count),
                "positive": values.get("positive", 0),
                "neutral": values.get("neutral", 0),
                "negative": values.get("negative", 0),
            }
        return {"day": text, **{name: values.get(name, 0) for name in fields[kind]}}

    def user(self, user: str, kind: str, params: dict[str, str]) -> dict[str, Any]:
        fields = {
            "messages": ("messages",),
            "likes": ("likes_given", "likes_received"),
            "views": ("view_ms", "views"),
        }[kind]
        rows = [
            {
                "day": d,
                **{f: self.user_days.get((user, d), {}).get(f, 0) for f in fields},
            }
            for d in days_between(params)
        ]
        body: dict[str, Any] = {"user": user, "days": rows}
        if kind == "messages":
            body["total"] = self.user_totals.get(user, 0)
        return body


def matching_pair() -> tuple[BatchSnapshot, FakeLive]:
    """Return a batch snapshot and a live fake that agree on every figure."""
    day_values = {
        "messages": 2,
        "likes": 3,
        "unlikes": 1,
        "view_ms": 1500,
        "views": 2,
        "s_count": 2,
        "s_sum": 4321,
        "positive": 1,
        "neutral": 1,
        "negative": 0,
    }

    snapshot = BatchSnapshot()
    snapshot.daily[D1] = batch_views.daily_document(day(D1), day_values)
    snapshot.user_daily[("alice@x", D1)] = {
        "user": "alice@x",
        "day": D1,
        "messages": 2,
        "likes_given": 0,
        "likes_received": 3,
        "view_ms": 0,
        "views": 0,
    }
    snapshot.user_daily[("bob", D2)] = {
        "user": "bob",
        "day": D2,
        "messages": 0,
        "likes_given": 3,
        "likes_received": 0,
        "view_ms": 1500,
        "views": 2,
    }
    snapshot.user_totals["alice@x"] = {"user": "alice@x", "messages": 5}
    snapshot.message_daily[(M1, D1)] = {"message_id": M1, "day": D1, "likes": 3}
    snapshot.message_totals[M1] = {
        "message_id": M1,
        "author": "alice@x",
        "created_day": D1,
        "like_count": 2,
        "view_ms": 1500,
        "views": 2,
    }

    live = FakeLive()
    live.days[D1] = dict(day_values)
    live.user_days[("alice@x", D1)] = {"messages": 2, "likes_received": 3}
    live.user_days[("bob", D2)] = {"likes_given": 3, "view_ms": 1500, "views": 2}
    live.user_totals["alice@x"] = 5
    live.message_likes[M1] = 2
    live.message_like_days[(M1, D1)] = 3
    live.message_views[M1] = {"view_ms": 1500, "views": 2}

    return snapshot, live


def test_compare_equal_views_has_no_differences() -> None:
    snapshot, live = matching_pair()

    assert compare(snapshot, live, day(D1), day(D2)) == []
    paths = {path for path, _ in live.requests}
    assert "/stats/users/alice%40x/messages" in paths
    assert "/stats/users/bob/views" in paths
    assert f"/stats/messages/{M1}/likes" in paths
    assert f"/stats/messages/{M1}/views" in paths


def test_compare_reports_daily_difference() -> None:
    snapshot, live = matching_pair()
    live.days[D1]["unlikes"] = 2

    assert compare(snapshot, live, day(D1), day(D2)) == [
        Difference("/stats/likes/daily", D1, "unlikes", 1, 2)
    ]


def test_compare_reports_live_only_day() -> None:
    snapshot, live = matching_pair()
    live.days[D2] = {"messages": 1}

    assert compare(snapshot, live, day(D1), day(D2)) == [
        Difference("/stats/messages/daily", D2, "messages", 0, 1)
    ]


def test_compare_reports_sentiment_fields() -> None:
    snapshot, live = matching_pair()
    live.days[D1]["s_sum"] = 4322

    differences = compare(snapshot, live, day(D1), day(D2))

    assert [(d.field, d.batch, d.live) for d in differences] == [
        ("compound_sum", 4321, 4322),
        ("mean_compound", 0.216, 0.2161),
    ]


def test_compare_reports_user_total_and_day() -> None:
    snapshot, live = matching_pair()
    live.user_totals["alice@x"] = 4
    live.user_days[("bob", D2)]["view_ms"] = 1400

    assert compare(snapshot, live, day(D1), day(D2)) == [
        Difference("/stats/users/alice%40x/messages", "alice@x", "total", 5, 4),
        Difference("/stats/users/bob/views", f"bob {D2}", "view_ms", 1500, 1400),
    ]


def test_compare_reports_message_figures() -> None:
    snapshot, live = matching_pair()
    live.message_likes[M1] = 1
    live.message_like_days[(M1, D2)] = 1
    live.message_views[M1] = {"view_ms": 1500, "views": 3}

    assert compare(snapshot, live, day(D1), day(D2)) == [
        Difference(f"/stats/messages/{M1}/likes", M1, "like_count", 2, 1),
        Difference(f"/stats/messages/{M1}/likes", f"{M1} {D2}", "likes", 0, 1),
        Difference(f"/stats/messages/{M1}/views", M1, "views", 2, 3),
    ]


def test_compare_reports_missing_live_day() -> None:
    snapshot, live = matching_pair()
    original = live.get

    def drop_days(path: str, params: dict[str, str]) -> dict[str, Any]:
        body = copy.deepcopy(original(path, params))
        if path == "/stats/views/daily":
            body["days"] = [row for row in body["days"] if row["day"] != D1]
        return body

    live.get = drop_days  # type: ignore[method-assign]

    assert compare(snapshot, live, day(D1), day(D2)) == [
        Difference("/stats/views/daily", D1, "view_ms", 1500, None),
        Difference("/stats/views/daily", D1, "views", 2, None),
    ]


def test_compare_checks_messages_created_in_range() -> None:
    snapshot, live = matching_pair()
    other = "00000000-0000-4000-8000-0000000000b2"
    old = "00000000-0000-4000-8000-0000000000b3"
    snapshot.message_totals[other] = {
        "message_id": other,
        "author": "bob",
        "created_day": D2,
        "like_count": 0,
        "view_ms": 0,
        "views": 0,
    }
    snapshot.message_totals[old] = {
        "message_id": old,
        "author": "bob",
        "created_day": "2025-01-01",
        "like_count": 7,
        "view_ms": 0,
        "views": 0,
    }
    live.message_views[other] = {"view_ms": 10, "views": 1}

    differences = compare(snapshot, live, day(D1), day(D2))

    assert differences == [
        Difference(f"/stats/messages/{other}/views", other, "view_ms", 0, 10),
        Difference(f"/stats/messages/{other}/views", other, "views", 0, 1),
    ]
    assert not any(old in path for path, _ in live.requests)


def test_compare_splits_long_ranges() -> None:
    snapshot, live = matching_pair()
    last = day(D1) + MAX_RANGE_DAYS + 10

    assert compare(snapshot, live, day(D1), last) == []
    daily = [params for path, params in live.requests if path == "/stats/views/daily"]
    assert [len(days_between(params)) for params in daily] == [MAX_RANGE_DAYS, 11]


def test_compare_raises_when_endpoint_fails() -> None:
    snapshot, live = matching_pair()

    def fail(path: str, params: dict[str, str]) -> dict[str, Any]:
        raise LiveReadError(f"GET {path} failed: connection refused")

    live.get = fail  # type: ignore[method-assign]

    with pytest.raises(LiveReadError, match="connection refused"):
        compare(snapshot, live, day(D1), day(D2))


def test_format_differences_table() -> None:
    text = format_differences([Difference("/stats/views/daily", D1, "views", 2, None)])

    assert text.splitlines() == [
        "endpoint            key         field  batch  live",
        "------------------  ----------  -----  -----  -------",
        "/stats/views/daily  2026-03-01  views  2      missing",
    ]
