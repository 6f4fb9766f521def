"""The event contract in app.events: each validation rule, its field and message."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from app.events import (
    BODY_MAX_CHARS,
    MICROS_PER_DAY,
    VIEW_MAX_DURATION_MS,
    InvalidEvent,
    check_view_timing,
    decode_event,
    event_from_dict,
    format_micros,
    make_event,
    new_event_id,
    new_message_id,
    parse_body,
    parse_day,
    parse_duration,
    parse_timestamp,
    parse_user,
    parse_uuid,
    uuid7_millis,
)

MESSAGE_ID = "01930b6e-8b1a-7c3d-9e4f-0123456789ab"
EVENT_ID = "4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
NOW = "2026-12-04T10:15:00.000000Z"
NOW_US = 1_796_379_300_000_000
ALL_TYPES = "MessagePosted, LikeAdded, LikeRemoved, ViewRecorded"


def record(event_type: str = "MessagePosted", **changes: Any) -> dict[str, Any]:
    """Return a valid record of ``event_type``; a change to None drops the field."""
    value: dict[str, Any] = {
        "schema_version": 1,
        "event_id": EVENT_ID,
        "type": event_type,
        "occurred_at": NOW,
        "message_id": MESSAGE_ID,
        "user": "alice",
    }
    if event_type == "MessagePosted":
        value.update(body="hello", created_at=NOW)
    if event_type == "ViewRecorded":
        value.update(started_at="2026-12-04T10:14:00Z", duration_ms=1500)
    value.update(changes)
    return {name: item for name, item in value.items() if item is not None}


def rejection(value: Any, **kwargs: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        event_from_dict(value, **kwargs)
    return caught.value


# ---------------------------------------------------------------- whole records


@pytest.mark.parametrize("event_type", ["MessagePosted", "LikeAdded", "LikeRemoved",
                                        "ViewRecorded"])
def test_record_round_trip(event_type: str) -> None:
    event = event_from_dict(record(event_type))
    assert decode_event(event.to_json()) == event
    assert orjson.loads(event.to_json())["type"] == event_type


def test_message_fields_parsed() -> None:
    event = event_from_dict(record())
    assert event.occurred_at == NOW_US
    assert event.created_at == NOW_US
    assert event.body == "hello"
    assert event.user == "alice"
    assert event.started_at is None


def test_view_fields_parsed() -> None:
    event = event_from_dict(record("ViewRecorded"))
    assert event.started_at == NOW_US - 60_000_000
    assert event.duration_ms == 1500
    assert event.body is None


def test_event_time_per_type() -> None:
    message = event_from_dict(record())
    like = event_from_dict(record("LikeAdded", occurred_at="2026-12-05T00:00:00Z"))
    view = event_from_dict(record("ViewRecorded", started_at="2026-12-03T23:59:59Z"))
    assert message.event_time == message.created_at
    assert like.event_time == like.occurred_at
    assert view.event_time == view.started_at
    assert like.day == message.day + 1
    assert view.day == message.day - 1


def test_topic_per_type() -> None:
    assert event_from_dict(record()).topic == "messages"
    assert event_from_dict(record("LikeAdded")).topic == "likes"
    assert event_from_dict(record("LikeRemoved")).topic == "likes"
    assert event_from_dict(record("ViewRecorded")).topic == "views"


def test_decode_rejects_invalid_json() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(b'{"type": ')
    assert caught.value.field == "$"
    assert caught.value.message.startswith("is not valid UTF-8 JSON: ")


def test_decode_rejects_invalid_utf8() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(b'{"user": "\xff"}')
    assert caught.value.field == "$"


@pytest.mark.parametrize("raw", [b'{"duration_ms": NaN}', b'{"duration_ms": Infinity}'])
def test_decode_rejects_nan_and_infinity(raw: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw)
    assert caught.value.field == "$"


@pytest.mark.parametrize("value", [[], "x", 1, None])
def test_record_must_be_object(value: Any) -> None:
    error = rejection(value)
    assert error.field == "$"
    assert error.message == "must be a JSON object"


@pytest.mark.parametrize("event_type", [None, "MessageDeleted", "likeadded", 3])
def test_unknown_type_rejected(event_type: Any) -> None:
    error = rejection(record(type=event_type) | {"type": event_type})
    assert error.field == "type"
    assert error.message == f"must be one of {ALL_TYPES}, got {event_type!r}"


def test_type_on_wrong_topic_rejected() -> None:
    error = rejection(record("LikeAdded"), expected_topic="messages")
    assert error.field == "type"
    assert error.message == "LikeAdded belongs on topic 'likes', not 'messages'"


def test_type_on_its_topic_accepted() -> None:
    assert event_from_dict(record("ViewRecorded"), expected_topic="views")


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("MessagePosted", "schema_version"),
        ("MessagePosted", "event_id"),
        ("MessagePosted", "occurred_at"),
        ("MessagePosted", "message_id"),
        ("MessagePosted", "user"),
        ("MessagePosted", "body"),
        ("MessagePosted", "created_at"),
        ("LikeAdded", "user"),
        ("LikeRemoved", "message_id"),
        ("ViewRecorded", "started_at"),
        ("ViewRecorded", "duration_ms"),
    ],
)
def test_missing_field_rejected(event_type: str, field: str) -> None:
    value = record(event_type)
    del value[field]
    error = rejection(value)
    assert error.field == field
    assert error.message == "is required"


@pytest.mark.parametrize(
    ("event_type", "field", "allowed"),
    [
        ("MessagePosted", "duration_ms",
         "schema_version, event_id, type, occurred_at, message_id, user, body, "
         "created_at"),
        ("LikeAdded", "body",
         "schema_version, event_id, type, occurred_at, message_id, user"),
        ("ViewRecorded", "extra",
         "schema_version, event_id, type, occurred_at, message_id, user, "
         "started_at, duration_ms"),
    ],
)
def test_unknown_field_rejected(event_type: str, field: str, allowed: str) -> None:
    error = rejection(record(event_type, **{field: 1}))
    assert error.field == field
    assert error.message == f"is not a known field; allowed: {allowed}"


@pytest.mark.parametrize("version", [0, 2, "1", 1.5, True])
def test_schema_version_must_be_one(version: Any) -> None:
    error = rejection(record(schema_version=version))
    assert error.field == "schema_version"
    assert error.message == f"must be 1, got {version!r}"


def test_created_at_must_equal_occurred_at() -> None:
    error = rejection(record(created_at="2026-12-04T10:15:00.000001Z"))
    assert error.field == "created_at"
    assert error.message == "must be the same instant as occurred_at in MessagePosted"


def test_created_at_same_instant_other_offset() -> None:
    event = event_from_dict(record(created_at="2026-12-04T11:15:00+01:00"))
    assert event.created_at == event.occurred_at


# ---------------------------------------------------------------- field parsers


@pytest.mark.parametrize("value", [None, 7, b"x", ["a"]])
def test_uuid_must_be_string(value: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_uuid(value, "event_id")
    assert caught.value.field == "event_id"
    assert caught.value.message == "must be a UUID string"


@pytest.mark.parametrize("value", ["", "xyz", "01930b6e-8b1a-7c3d-9e4f-0123456789"])
def test_uuid_must_parse(value: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_uuid(value, "message_id")
    assert caught.value.field == "message_id"
    assert caught.value.message == f"must be a UUID, got {value!r}"


def test_uuid_error_truncates_value() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_uuid("z" * 500, "message_id")
    assert caught.value.message == f"must be a UUID, got {'z' * 64!r}"


@pytest.mark.parametrize(
    "value",
    [
        MESSAGE_ID.upper(),
        "{" + MESSAGE_ID + "}",
        MESSAGE_ID.replace("-", ""),
        "urn:uuid:" + MESSAGE_ID,
    ],
)
def test_uuid_must_be_canonical(value: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_uuid(value, "message_id")
    assert caught.value.message == "must be a lower-case UUID in 8-4-4-4-12 form"


def test_uuid_canonical_accepted() -> None:
    assert parse_uuid(MESSAGE_ID, "message_id") == MESSAGE_ID


@pytest.mark.parametrize(
    "value", ["", "a" * 65, "al ice", "alice!", "ålice", "a/b", None, 5, "a\x00"]
)
def test_invalid_user_rejected(value: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_user(value, "user")
    assert caught.value.field == "user"
    assert caught.value.message == (
        "must be 1 to 64 characters of letters, digits and _ . @ -"
    )


@pytest.mark.parametrize("value", ["a", "a" * 64, "Alice_1.b@c-d"])
def test_valid_user_accepted(value: str) -> None:
    assert parse_user(value, "user") == value


def test_user_with_trailing_newline_rejected() -> None:
    # ``$`` in a Python regex also matches before a final newline.
    with pytest.raises(InvalidEvent):
        parse_user("alice\n", "user")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be a string"),
        (5, "must be a string"),
        ("", "must not be empty or only white space"),
        (" \t\n\u3000", "must not be empty or only white space"),
        ("x" * (BODY_MAX_CHARS + 1), "must be at most 1000 characters, got 1001"),
        ("a\x00b", "must not contain NUL characters (U+0000)"),
        ("a\ud800b", "must not contain lone UTF-16 surrogates"),
        ("\udc00", "must not contain lone UTF-16 surrogates"),
    ],
)
def test_invalid_body_rejected(value: Any, message: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_body(value)
    assert caught.value.field == "body"
    assert caught.value.message == message


@pytest.mark.parametrize(
    "value", ["x" * BODY_MAX_CHARS, "😀" * BODY_MAX_CHARS, "ok", " padded "]
)
def test_valid_body_accepted(value: str) -> None:
    assert parse_body(value) == value


def test_body_limit_counts_code_points() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_body("😀" * (BODY_MAX_CHARS + 1))
    assert caught.value.message == "must be at most 1000 characters, got 1001"


@pytest.mark.parametrize("value", [True, 1.0, "10", None])
def test_duration_must_be_integer(value: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_duration(value)
    assert caught.value.field == "duration_ms"
    assert caught.value.message == "must be an integer number of milliseconds"


@pytest.mark.parametrize("value", [0, -1, VIEW_MAX_DURATION_MS + 1])
def test_duration_out_of_range(value: int) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_duration(value)
    assert caught.value.message == (
        f"must be greater than 0 and at most 3600000 (one hour), got {value}"
    )


@pytest.mark.parametrize("value", [1, VIEW_MAX_DURATION_MS])
def test_duration_bounds_accepted(value: int) -> None:
    assert parse_duration(value) == value


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-12-04T10:15:00Z", NOW_US),
        ("2026-12-04T10:15:00.5Z", NOW_US + 500_000),
        ("2026-12-04T10:15:00.123456Z", NOW_US + 123_456),
        ("2026-12-04T11:15:00+01:00", NOW_US),
        ("2026-12-04T05:15:00-05:00", NOW_US),
        ("2026-12-04t10:15:00z", NOW_US),
        ("2026-12-04 10:15:00Z", NOW_US),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_timestamp_parsed(text: str, micros: int) -> None:
    assert parse_timestamp(text, "occurred_at") == micros


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T10:15:00",
        "2026-12-04T10:15:00.000",
        "2026-12-04",
        "2026-12-04T10:15Z",
        "2026-12-04T10:15:00+0100",
        "04/12/2026 10:15:00Z",
        "2026-12-04T10:15:00.1234567890Z",
        "",
    ],
)
def test_timestamp_needs_rfc3339_with_offset(text: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(text, "occurred_at")
    assert caught.value.field == "occurred_at"
    assert caught.value.message == (
        "must be an RFC 3339 timestamp with a UTC offset, such as "
        f"2026-12-04T10:15:00.000Z; got {text!r}"
    )


@pytest.mark.parametrize("text", ["2026-02-30T10:15:00Z", "2026-12-04T25:00:00Z"])
def test_timestamp_impossible_date(text: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(text, "created_at")
    assert caught.value.message == f"is not a valid date and time: {text!r}"


@pytest.mark.parametrize("value", [1_796_379_300_000, None, 1.5e12])
def test_timestamp_without_millis_needs_string(value: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(value, "occurred_at")
    assert caught.value.message == "must be an RFC 3339 string"


def test_started_at_accepts_epoch_millis() -> None:
    millis = NOW_US // 1000
    assert parse_timestamp(millis, "started_at", allow_millis=True) == NOW_US


@pytest.mark.parametrize("value", [1_796_379_300, 99_999_999_999, 0])
def test_started_at_rejects_epoch_seconds(value: int) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(value, "started_at", allow_millis=True)
    assert caught.value.field == "started_at"
    assert caught.value.message == (
        f"{value} looks like epoch seconds; send epoch milliseconds or an RFC "
        "3339 string"
    )


@pytest.mark.parametrize("value", [True, 1.7e12, None])
def test_started_at_rejects_other_types(value: Any) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_timestamp(value, "started_at", allow_millis=True)
    assert caught.value.message == "must be an RFC 3339 string or epoch milliseconds"


def test_view_with_seconds_names_started_at() -> None:
    error = rejection(record("ViewRecorded", started_at=1_796_379_240))
    assert error.field == "started_at"


# ---------------------------------------------------------------- view timing


def view(started_at: int, occurred_at: int = NOW_US) -> Any:
    return make_event(
        "ViewRecorded", message_id=MESSAGE_ID, user="alice",
        occurred_at=occurred_at, started_at=started_at, duration_ms=10,
    )


def test_view_five_minutes_ahead_accepted() -> None:
    check_view_timing(view(NOW_US + 300_000_000), retention_days=30)


def test_view_beyond_five_minutes_rejected() -> None:
    with pytest.raises(InvalidEvent) as caught:
        check_view_timing(view(NOW_US + 300_000_001), retention_days=30)
    assert caught.value.field == "started_at"
    assert caught.value.message == (
        "is more than 5 minutes after the time it was reported"
    )


def test_view_on_oldest_retained_day_accepted() -> None:
    today = NOW_US // MICROS_PER_DAY
    oldest_start = (today - 29) * MICROS_PER_DAY
    check_view_timing(view(oldest_start), retention_days=30)


def test_view_before_retention_rejected() -> None:
    today = NOW_US // MICROS_PER_DAY
    just_before = (today - 29) * MICROS_PER_DAY - 1
    with pytest.raises(InvalidEvent) as caught:
        check_view_timing(view(just_before), retention_days=30)
    assert caught.value.field == "started_at"
    assert caught.value.message == "is older than the retention period of 30 days"


def test_view_retention_of_one_day() -> None:
    today_start = (NOW_US // MICROS_PER_DAY) * MICROS_PER_DAY
    check_view_timing(view(today_start), retention_days=1)
    with pytest.raises(InvalidEvent):
        check_view_timing(view(today_start - 1), retention_days=1)


# ---------------------------------------------------------------- ids and time


def test_message_ids_are_uuid7_and_increase() -> None:
    ids = [new_message_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(value).version for value in ids} == {7}
    assert {uuid.UUID(value).variant for value in ids} == {uuid.RFC_4122}


def test_uuid7_millis_is_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    message_id = new_message_id()
    after = time.time_ns() // 1_000_000
    millis = uuid7_millis(message_id)
    assert millis is not None
    # The counter may push an id up to a few milliseconds ahead of the clock.
    assert before <= millis <= after + 5


def test_uuid7_millis_other_versions() -> None:
    assert uuid7_millis(new_event_id()) is None
    assert uuid7_millis(str(uuid.uuid1())) is None


def test_format_micros_is_utc_rfc3339() -> None:
    assert format_micros(NOW_US) == NOW
    assert format_micros(0) == "1970-01-01T00:00:00.000000Z"
    assert parse_timestamp(format_micros(NOW_US + 7), "t") == NOW_US + 7


def test_make_event_message_times() -> None:
    event = make_event("MessagePosted", message_id=MESSAGE_ID, user="a", body="b",
                       occurred_at=NOW_US)
    assert event.created_at == NOW_US
    assert event_from_dict(event.to_dict()) == event


def test_parse_day() -> None:
    assert parse_day("1970-01-02", "from") == 1
    with pytest.raises(InvalidEvent) as caught:
        parse_day("2026-13-01", "from")
    assert caught.value.field == "from"
    assert caught.value.message == "must be a date as YYYY-MM-DD, got '2026-13-01'"
