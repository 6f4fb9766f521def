"""Truth figures of small hand-built record lists, with exact expected values."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from simulator.records import (
    Record,
    encode,
    like_changed,
    message_posted,
    parse_time,
    view_recorded,
)
from simulator.truth import Rejected, compute_truth, mean_compound, read_event

MESSAGE = "01930000-0000-7000-8000-000000000001"
OTHER_MESSAGE = "01930000-0000-7000-8000-000000000002"
NEVER_POSTED = "01930000-0000-7000-8000-0000000000ff"
LOVE = "I love this, it is wonderful!"  # VADER 3.3.2 compound 0.8478
HATE = "This is terrible and I hate it."  # compound -0.7783
NEUTRAL = "The bus leaves at noon."  # compound 0.0

_ids = itertools.count(1)


def t(text: str) -> int:
    return parse_time(text)


def new_id() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


def record(event: dict[str, Any]) -> Record:
    topic = {
        "MessagePosted": "messages",
        "LikeAdded": "likes",
        "LikeRemoved": "likes",
        "ViewRecorded": "views",
    }[event["type"]]
    return Record(topic, event["message_id"].encode(), encode(event), 0)


def post(
    at: str, message_id: str = MESSAGE, user: str = "alice", body: str = LOVE
) -> Record:
    return record(message_posted(new_id(), message_id, user, body, t(at)))


def like(at: str, user: str = "bob", message_id: str = MESSAGE) -> Record:
    return record(like_changed("LikeAdded", new_id(), message_id, user, t(at)))


def unlike(at: str, user: str = "bob", message_id: str = MESSAGE) -> Record:
    return record(like_changed("LikeRemoved", new_id(), message_id, user, t(at)))


def view(
    started: str,
    duration_ms: int,
    reported: str,
    user: str = "carol",
    message_id: str = MESSAGE,
) -> Record:
    event = view_recorded(
        new_id(), message_id, user, t(started), duration_ms, t(reported)
    )
    return record(event)


def figures(records: list[Record], **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = compute_truth(records, **options)["figures"]
    return result


def test_double_like_counts_once() -> None:
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z"),
            like("2026-12-01T09:00:00Z"),
            like("2026-12-01T10:00:00Z"),
        ]
    )
    result = truth["figures"]
    assert result["message_likes"][MESSAGE] == {
        "like_count": 1,
        "days": {"2026-12-01": 1},
    }
    assert result["likes_daily"]["2026-12-01"] == {"likes": 1, "unlikes": 0}
    assert result["user_likes"]["bob"]["days"] == {
        "2026-12-01": {"likes_given": 1, "likes_received": 0}
    }
    assert result["user_likes"]["alice"]["days"] == {
        "2026-12-01": {"likes_given": 0, "likes_received": 1}
    }
    # The second like is valid but has no effect.
    assert truth["sent"]["likes"] == {
        "valid": 2,
        "invalid": 0,
        "duplicate": 0,
        "total": 2,
    }


def test_unlike_without_like_has_no_effect() -> None:
    result = figures([post("2026-12-01T08:00:00Z"), unlike("2026-12-01T09:00:00Z")])
    assert result["message_likes"][MESSAGE] == {"like_count": 0, "days": {}}
    assert result["likes_daily"]["2026-12-01"] == {"likes": 0, "unlikes": 0}
    assert result["user_likes"]["bob"]["days"] == {}


def test_like_unlike_unlike_counts_one_each() -> None:
    result = figures(
        [
            post("2026-12-01T08:00:00Z"),
            like("2026-12-01T09:00:00Z"),
            unlike("2026-12-01T10:00:00Z"),
            unlike("2026-12-01T11:00:00Z"),
        ]
    )
    assert result["message_likes"][MESSAGE] == {
        "like_count": 0,
        "days": {"2026-12-01": 1},
    }
    assert result["likes_daily"]["2026-12-01"] == {"likes": 1, "unlikes": 1}


def test_like_and_unlike_on_different_days() -> None:
    result = figures(
        [
            post("2026-12-01T08:00:00Z"),
            like("2026-12-01T23:59:59.999999Z"),
            unlike("2026-12-02T00:00:00Z"),
            like("2026-12-02T01:00:00Z", user="dave"),
        ]
    )
    assert result["message_likes"][MESSAGE] == {
        "like_count": 1,
        "days": {"2026-12-01": 1, "2026-12-02": 1},
    }
    assert result["likes_daily"] == {
        "2026-12-01": {"likes": 1, "unlikes": 0},
        "2026-12-02": {"likes": 1, "unlikes": 1},
    }
    assert result["user_likes"]["alice"]["days"] == {
        "2026-12-01": {"likes_given": 0, "likes_received": 1},
        "2026-12-02": {"likes_given": 0, "likes_received": 1},
    }


def test_duplicate_event_id_is_ignored() -> None:
    first_like = like("2026-12-01T09:00:00Z")
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z"),
            first_like,
            unlike("2026-12-01T10:00:00Z"),
            # Re-sent after the unlike: applying it again would like again.
            first_like,
        ]
    )
    assert truth["figures"]["message_likes"][MESSAGE]["like_count"] == 0
    assert truth["figures"]["likes_daily"]["2026-12-01"] == {"likes": 1, "unlikes": 1}
    assert truth["sent"]["likes"] == {
        "valid": 2,
        "invalid": 0,
        "duplicate": 1,
        "total": 3,
    }


def test_duplicate_view_is_ignored() -> None:
    seen = view("2026-12-01T09:00:00Z", 1500, "2026-12-01T09:00:02Z")
    truth = compute_truth([post("2026-12-01T08:00:00Z"), seen, seen])
    assert truth["figures"]["message_views"][MESSAGE] == {"view_ms": 1500, "views": 1}
    assert truth["sent"]["views"]["duplicate"] == 1


def test_same_event_id_on_other_topic_counts() -> None:
    shared_id = new_id()
    posted = message_posted(
        shared_id, MESSAGE, "alice", LOVE, t("2026-12-01T08:00:00Z")
    )
    liked = like_changed(
        "LikeAdded", shared_id, MESSAGE, "bob", t("2026-12-01T09:00:00Z")
    )
    truth = compute_truth([record(posted), record(liked)])
    assert truth["figures"]["message_likes"][MESSAGE]["like_count"] == 1


def test_view_over_one_hour_is_invalid() -> None:
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z"),
            view("2026-12-01T09:00:00Z", 3_600_001, "2026-12-01T10:00:01Z"),
            view("2026-12-01T09:00:00Z", 3_600_000, "2026-12-01T10:00:00Z"),
        ]
    )
    assert truth["figures"]["views_daily"]["2026-12-01"] == {
        "view_ms": 3_600_000,
        "views": 1,
    }
    assert truth["sent"]["views"]["invalid"] == 1


def test_view_starting_after_report_limit() -> None:
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z"),
            # Exactly 5 minutes after the report is still valid.
            view("2026-12-01T09:05:00Z", 100, "2026-12-01T09:00:00Z"),
            view("2026-12-01T09:05:00.000001Z", 200, "2026-12-01T09:00:00Z"),
            view("2026-12-01T09:10:00Z", 400, "2026-12-01T09:00:00Z", user="dave"),
        ]
    )
    result = truth["figures"]
    assert result["views_daily"]["2026-12-01"] == {"view_ms": 100, "views": 1}
    assert "dave" not in result["user_views"]
    assert truth["sent"]["views"] == {
        "valid": 1,
        "invalid": 2,
        "duplicate": 0,
        "total": 3,
    }


def test_view_older_than_retention_is_invalid() -> None:
    truth = compute_truth(
        [
            post("2026-11-01T08:00:00Z"),
            # The oldest day allowed is the report day minus 29 days.
            view("2026-11-02T23:59:59Z", 100, "2026-12-01T09:00:00Z"),
            view("2026-11-01T23:59:59Z", 200, "2026-12-01T09:00:00Z"),
        ],
        retention_days=30,
    )
    assert truth["figures"]["message_views"][MESSAGE] == {"view_ms": 100, "views": 1}
    assert truth["sent"]["views"]["invalid"] == 1


def test_late_view_counts_on_start_day() -> None:
    result = figures(
        [
            post("2026-12-01T08:00:00Z"),
            view("2026-12-01T23:50:00Z", 20_000, "2026-12-02T03:00:00Z"),
            view("2026-12-02T10:00:00Z", 5_000, "2026-12-02T10:00:05Z"),
        ]
    )
    assert result["views_daily"] == {
        "2026-12-01": {"view_ms": 20_000, "views": 1},
        "2026-12-02": {"view_ms": 5_000, "views": 1},
    }
    assert result["user_views"]["carol"]["days"] == {
        "2026-12-01": {"view_ms": 20_000, "views": 1},
        "2026-12-02": {"view_ms": 5_000, "views": 1},
    }
    assert result["message_views"][MESSAGE] == {"view_ms": 25_000, "views": 2}


def test_view_with_epoch_millis_start() -> None:
    event = view_recorded(
        new_id(),
        MESSAGE,
        "carol",
        t("2026-12-01T09:00:00Z"),
        700,
        t("2026-12-01T09:00:01Z"),
    )
    event["started_at"] = t("2026-12-01T09:00:00Z") // 1000
    result = figures([post("2026-12-01T08:00:00Z"), record(event)])
    assert result["views_daily"]["2026-12-01"] == {"view_ms": 700, "views": 1}


def test_like_of_never_posted_message() -> None:
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z"),
            like("2026-12-01T09:00:00Z", message_id=NEVER_POSTED),
        ]
    )
    assert truth["figures"]["likes_daily"]["2026-12-01"] == {"likes": 0, "unlikes": 0}
    assert NEVER_POSTED not in truth["figures"]["message_likes"]
    assert truth["sent"]["likes"]["invalid"] == 1


def test_repost_of_message_id_is_invalid() -> None:
    truth = compute_truth(
        [
            post("2026-12-01T08:00:00Z", user="alice", body=LOVE),
            post("2026-12-01T09:00:00Z", user="mallory", body=HATE),
            like("2026-12-01T10:00:00Z"),
        ]
    )
    result = truth["figures"]
    assert result["messages_daily"]["2026-12-01"] == {"messages": 1}
    assert result["user_messages"]["alice"] == {"total": 1, "days": {"2026-12-01": 1}}
    assert "mallory" not in result["user_messages"]
    assert result["user_likes"]["alice"]["days"]["2026-12-01"]["likes_received"] == 1
    assert truth["sent"]["messages"]["invalid"] == 1


def test_malformed_json_is_invalid() -> None:
    good = like("2026-12-01T09:00:00Z")
    bad_records = [
        Record("likes", good.key, good.value[:-1], 0),
        Record(
            "likes", good.key, good.value.replace(b"LikeAdded", b"Like\xe9Added"), 0
        ),
        Record("likes", good.key, b"[1, 2]", 0),
        Record("likes", good.key, b'{"duration_ms": NaN}', 0),
    ]
    truth = compute_truth([post("2026-12-01T08:00:00Z"), *bad_records])
    assert truth["sent"]["likes"] == {
        "valid": 0,
        "invalid": 4,
        "duplicate": 0,
        "total": 4,
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("message_id", "0193ABCD-0000-7000-8000-00000000000A", "lower-case"),
        ("message_id", "not-a-uuid", "message_id is not a UUID"),
        ("user", "no spaces allowed", "user"),
        ("schema_version", 2, "schema_version"),
        ("schema_version", True, "schema_version"),
        ("occurred_at", "2026-12-01T09:00:00", "occurred_at"),
        ("occurred_at", "2026-02-30T09:00:00Z", "occurred_at"),
        ("type", "LikeToggled", "unknown type"),
        ("type", ["LikeAdded"], "unknown type"),
        ("extra", 1, "fields"),
    ],
)
def test_contract_violation_is_invalid(field: str, value: Any, reason: str) -> None:
    event = like_changed(
        "LikeAdded", new_id(), MESSAGE, "bob", t("2026-12-01T09:00:00Z")
    )
    event[field] = value
    with pytest.raises(Rejected, match=reason):
        read_event("likes", orjson.dumps(event), retention_days=30)


def test_message_on_wrong_topic_is_invalid() -> None:
    posted = post("2026-12-01T08:00:00Z")
    wrong = Record("likes", posted.key, posted.value, 0)
    truth = compute_truth([wrong])
    assert truth["sent"]["likes"]["invalid"] == 1
    assert truth["message_ids"] == []


def test_sentiment_per_day() -> None:
    result = figures(
        [
            post("2026-12-01T08:00:00Z", MESSAGE, body=LOVE),
            post("2026-12-01T09:00:00Z", OTHER_MESSAGE, body=HATE),
            post(
                "2026-12-02T09:00:00Z",
                "01930000-0000-7000-8000-000000000003",
                body=NEUTRAL,
            ),
        ]
    )
    assert result["sentiment_daily"] == {
        "2026-12-01": {
            "count": 2,
            "compound_sum": 8478 - 7783,
            "mean_compound": 0.0348,
            "positive": 1,
            "neutral": 0,
            "negative": 1,
        },
        "2026-12-02": {
            "count": 1,
            "compound_sum": 0,
            "mean_compound": 0.0,
            "positive": 0,
            "neutral": 1,
            "negative": 0,
        },
    }


def test_messages_per_user_and_day() -> None:
    result = figures(
        [
            post("2026-12-01T08:00:00Z", MESSAGE, user="alice"),
            post("2026-12-03T09:00:00Z", OTHER_MESSAGE, user="alice"),
        ],
        users=["alice", "zoe"],
    )
    # Days between the first and last event are listed with zeros.
    assert result["messages_daily"] == {
        "2026-12-01": {"messages": 1},
        "2026-12-02": {"messages": 0},
        "2026-12-03": {"messages": 1},
    }
    assert result["user_messages"]["alice"] == {
        "total": 2,
        "days": {"2026-12-01": 1, "2026-12-03": 1},
    }
    assert result["user_messages"]["zoe"] == {"total": 0, "days": {}}


def test_truth_lists_days_users_ids() -> None:
    truth = compute_truth(
        [post("2026-12-02T08:00:00Z"), like("2026-12-02T09:00:00Z")],
        days=["2026-12-01", "2026-12-02"],
        users=["zoe"],
    )
    assert truth["days"] == ["2026-12-01", "2026-12-02"]
    assert truth["users"] == ["alice", "bob", "zoe"]
    assert truth["message_ids"] == [MESSAGE]
    assert truth["format"] == "socialstream-simulator-truth"
    assert truth["version"] == 1


def test_mean_compound_rounding() -> None:
    assert mean_compound(0, 0) == 0.0
    assert mean_compound(695, 2) == 0.0348
    assert mean_compound(-10001, 3) == -0.3334
