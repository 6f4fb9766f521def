"""Kafka records as the simulator sends them, and the event fields they carry.

The simulator writes the event contract of ``docs/events.md`` by hand instead
of through ``app.events``, so that the truth it computes does not share code
with the product it checks. A unit test checks that the field lists here
equal the contract's.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import orjson

SCHEMA_VERSION = 1
TOPICS = ("messages", "likes", "views")
MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND

COMMON_FIELDS = ("schema_version", "event_id", "type", "occurred_at")
FIELDS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "MessagePosted": (*COMMON_FIELDS, "message_id", "user", "body", "created_at"),
    "LikeAdded": (*COMMON_FIELDS, "message_id", "user"),
    "LikeRemoved": (*COMMON_FIELDS, "message_id", "user"),
    "ViewRecorded": (*COMMON_FIELDS, "message_id", "user", "started_at", "duration_ms"),
}
TOPIC_OF_TYPE = {
    "MessagePosted": "messages",
    "LikeAdded": "likes",
    "LikeRemoved": "likes",
    "ViewRecorded": "views",
}

RecordKind = Literal["valid", "invalid", "duplicate"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record to send, with the simulator's own label for it.

    ``topic`` is the topic name without the deployment prefix. ``send_at`` is
    the simulated time of sending in epoch microseconds, which orders the
    records and paces a real-time run. ``session`` groups the views that one
    client reports together, which the HTTP sender posts as one request.
    """

    topic: str
    key: bytes
    value: bytes
    send_at: int
    kind: RecordKind = "valid"
    reason: str | None = None
    session: int | None = None

    def payload(self) -> dict[str, Any]:
        """Decode the value as the JSON object the simulator wrote."""
        value = orjson.loads(self.value)
        assert isinstance(value, dict)
        return value


def format_time(micros: int) -> str:
    """Format epoch microseconds as RFC 3339 UTC: ``2026-12-01T10:15:00.123456Z``."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """Parse an RFC 3339 timestamp that has a UTC offset into epoch microseconds."""
    moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * MICROS_PER_SECOND + delta.microseconds


def day_of(micros: int) -> str:
    """Return the UTC calendar day of epoch microseconds as ``YYYY-MM-DD``."""
    return (date(1970, 1, 1) + timedelta(days=micros // MICROS_PER_DAY)).isoformat()


def day_start(value: date) -> int:
    """Return midnight UTC of ``value`` in epoch microseconds."""
    return (value - date(1970, 1, 1)).days * MICROS_PER_DAY


def random_uuid4(rng: random.Random) -> str:
    """Return a version 4 UUID whose random bits come from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_uuid7(rng: random.Random, micros: int) -> str:
    """Return a time-ordered version 7 UUID for ``micros`` with bits from ``rng``.

    The layout follows RFC 9562: 48 bits of Unix milliseconds, the version,
    12 random bits, the variant and 62 random bits.
    """
    millis = micros // 1000
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
    value |= (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def message_posted(
    event_id: str, message_id: str, user: str, body: str, created_at: int
) -> dict[str, Any]:
    stamp = format_time(created_at)
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "type": "MessagePosted",
        "occurred_at": stamp,
        "message_id": message_id,
        "user": user,
        "body": body,
        "created_at": stamp,
    }


def like_changed(
    event_type: Literal["LikeAdded", "LikeRemoved"],
    event_id: str,
    message_id: str,
    user: str,
    occurred_at: int,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "type": event_type,
        "occurred_at": format_time(occurred_at),
        "message_id": message_id,
        "user": user,
    }


def view_recorded(
    event_id: str,
    message_id: str,
    user: str,
    started_at: int,
    duration_ms: int,
    occurred_at: int,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "type": "ViewRecorded",
        "occurred_at": format_time(occurred_at),
        "message_id": message_id,
        "user": user,
        "started_at": format_time(started_at),
        "duration_ms": duration_ms,
    }


def event_record(
    event: dict[str, Any], send_at: int, session: int | None = None
) -> Record:
    """Wrap a valid event dict in a record keyed by its message id."""
    return Record(
        topic=TOPIC_OF_TYPE[event["type"]],
        key=event["message_id"].encode("utf-8"),
        value=encode(event),
        send_at=send_at,
        session=session,
    )
