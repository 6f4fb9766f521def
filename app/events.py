"""Event records: the contract of the ``messages``, ``likes`` and ``views`` topics.

Every record value is a UTF-8 JSON object (RFC 8259, so no NaN or Infinity)
with ``schema_version``, ``event_id``, ``type`` and ``occurred_at`` plus the
fields of its type; the record key is the ``message_id``. ``docs/events.md``
documents the format for outside producers. :func:`decode_event` is the one
parser: the HTTP API, the agents and the batch layer all validate through it,
so the speed and batch layers accept and reject the same records.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeAlias

import orjson

SCHEMA_VERSION = 1
BODY_MAX_CHARS = 1000
USER_MAX_CHARS = 64
VIEW_MAX_DURATION_MS = 3_600_000
# A view may start at most this far after it was recorded (clock skew).
VIEW_MAX_FUTURE = timedelta(minutes=5)
MICROS_PER_DAY = 86_400_000_000
# Epoch milliseconds below this (1973-03-03) are taken for a value in seconds.
MIN_EPOCH_MILLIS = 100_000_000_000

EventType: TypeAlias = Literal[
    "MessagePosted", "LikeAdded", "LikeRemoved", "ViewRecorded"
]
TOPIC_OF_TYPE: dict[str, str] = {
    "MessagePosted": "messages",
    "LikeAdded": "likes",
    "LikeRemoved": "likes",
    "ViewRecorded": "views",
}

_USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# The form str(uuid.UUID(...)) gives: lower-case hex in 8-4-4-4-12 groups.
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_COMMON_FIELDS = ("schema_version", "event_id", "type", "occurred_at")
_FIELDS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "MessagePosted": (*_COMMON_FIELDS, "message_id", "user", "body", "created_at"),
    "LikeAdded": (*_COMMON_FIELDS, "message_id", "user"),
    "LikeRemoved": (*_COMMON_FIELDS, "message_id", "user"),
    "ViewRecorded": (
        *_COMMON_FIELDS,
        "message_id",
        "user",
        "started_at",
        "duration_ms",
    ),
}


class InvalidEvent(ValueError):
    """A record or request field is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event. Times are UTC epoch microseconds."""

    event_id: str
    type: EventType
    occurred_at: int
    message_id: str
    user: str
    body: str | None = None
    created_at: int | None = None
    started_at: int | None = None
    duration_ms: int | None = None

    @property
    def event_time(self) -> int:
        """Return the time the analytics count the event at, in microseconds.

        A message counts at ``created_at``, a view at ``started_at`` and a
        like or unlike at ``occurred_at``.
        """
        if self.type == "MessagePosted":
            assert self.created_at is not None
            return self.created_at
        if self.type == "ViewRecorded":
            assert self.started_at is not None
            return self.started_at
        return self.occurred_at

    @property
    def day(self) -> int:
        """Return the UTC day of the event time, in days since 1970-01-01."""
        return self.event_time // MICROS_PER_DAY

    @property
    def topic(self) -> str:
        return TOPIC_OF_TYPE[self.type]

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": format_micros(self.occurred_at),
            "message_id": self.message_id,
            "user": self.user,
        }
        if self.type == "MessagePosted":
            assert self.created_at is not None
            record["body"] = self.body
            record["created_at"] = format_micros(self.created_at)
        elif self.type == "ViewRecorded":
            assert self.started_at is not None
            record["started_at"] = format_micros(self.started_at)
            record["duration_ms"] = self.duration_ms
        return record

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


# ---------------------------------------------------------------- decoding


def decode_event(raw: bytes | str, *, expected_topic: str | None = None) -> Event:
    """Parse and validate one record value; raise InvalidEvent naming the field."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidEvent("$", f"is not valid UTF-8 JSON: {error}") from None
    return event_from_dict(value, expected_topic=expected_topic)


def event_from_dict(value: Any, *, expected_topic: str | None = None) -> Event:
    if not isinstance(value, dict):
        raise InvalidEvent("$", "must be a JSON object")
    event_type = value.get("type")
    if event_type not in _FIELDS_OF_TYPE:
        allowed = ", ".join(_FIELDS_OF_TYPE)
        raise InvalidEvent("type", f"must be one of {allowed}, got {event_type!r}")
    if expected_topic is not None and TOPIC_OF_TYPE[event_type] != expected_topic:
        raise InvalidEvent(
            "type",
            f"{event_type} belongs on topic {TOPIC_OF_TYPE[event_type]!r}, "
            f"not {expected_topic!r}",
        )
    check_fields(value, _FIELDS_OF_TYPE[event_type])
    version = value["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InvalidEvent(
            "schema_version", f"must be {SCHEMA_VERSION}, got {version!r}"
        )
    # Checked in the order of the fields in the contract, so a record with
    # several bad fields always names the same one.
    event_id = parse_uuid(value["event_id"], "event_id")
    occurred_at = parse_timestamp(value["occurred_at"], "occurred_at")
    common = (
        event_id,
        event_type,
        occurred_at,
        parse_uuid(value["message_id"], "message_id"),
        parse_user(value["user"], "user"),
    )
    if event_type == "MessagePosted":
        created_at = parse_timestamp(value["created_at"], "created_at")
        if created_at != occurred_at:
            raise InvalidEvent(
                "created_at", "must be the same instant as occurred_at in MessagePosted"
            )
        return Event(*common, body=parse_body(value["body"]), created_at=created_at)
    if event_type == "ViewRecorded":
        started_at = parse_timestamp(
            value["started_at"], "started_at", allow_millis=True
        )
        duration_ms = parse_duration(value["duration_ms"])
        return Event(*common, started_at=started_at, duration_ms=duration_ms)
    return Event(*common)


def check_view_timing(event: Event, retention_days: int) -> None:
    """Raise InvalidEvent when a view starts in the future or is too old.

    Both limits are measured from the event's own ``occurred_at``, the time
    the client reported it, so a replay of the archive applies them exactly
    as the live stream did.
    """
    assert event.started_at is not None
    limit_future = event.occurred_at + to_micros(VIEW_MAX_FUTURE)
    if event.started_at > limit_future:
        raise InvalidEvent(
            "started_at", "is more than 5 minutes after the time it was reported"
        )
    oldest_day = event.occurred_at // MICROS_PER_DAY - retention_days + 1
    if event.started_at // MICROS_PER_DAY < oldest_day:
        raise InvalidEvent(
            "started_at",
            f"is older than the retention period of {retention_days} days",
        )


def check_fields(value: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for name in allowed:
        if name not in value:
            raise InvalidEvent(name, "is required")
    for name in value:
        if name not in allowed:
            raise InvalidEvent(
                name, f"is not a known field; allowed: {', '.join(allowed)}"
            )


def parse_uuid(value: Any, field: str) -> str:
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be a UUID string")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidEvent(field, f"must be a UUID, got {value[:64]!r}") from None
    if str(parsed) != value:
        raise InvalidEvent(field, "must be a lower-case UUID in 8-4-4-4-12 form")
    return value


def parse_user(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _USER_RE.fullmatch(value):
        raise InvalidEvent(
            field,
            f"must be 1 to {USER_MAX_CHARS} characters of letters, digits and _ . @ -",
        )
    return value


def parse_body(value: Any) -> str:
    """Validate a message body. NUL characters and lone surrogates are rejected."""
    if not isinstance(value, str):
        raise InvalidEvent("body", "must be a string")
    if not value.strip():
        raise InvalidEvent("body", "must not be empty or only white space")
    if len(value) > BODY_MAX_CHARS:
        raise InvalidEvent(
            "body", f"must be at most {BODY_MAX_CHARS} characters, got {len(value)}"
        )
    if "\x00" in value:
        raise InvalidEvent("body", "must not contain NUL characters (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent("body", "must not contain lone UTF-16 surrogates") from None
    return value


def parse_duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("duration_ms", "must be an integer number of milliseconds")
    if not 0 < value <= VIEW_MAX_DURATION_MS:
        raise InvalidEvent(
            "duration_ms",
            f"must be greater than 0 and at most {VIEW_MAX_DURATION_MS} (one hour), "
            f"got {value}",
        )
    return value


def parse_timestamp(value: Any, field: str, *, allow_millis: bool = False) -> int:
    """Return UTC epoch microseconds from an RFC 3339 string with an offset.

    With ``allow_millis`` an integer of epoch milliseconds is accepted too.
    """
    if allow_millis and isinstance(value, int) and not isinstance(value, bool):
        if value < MIN_EPOCH_MILLIS:
            raise InvalidEvent(
                field,
                f"{value} looks like epoch seconds; send epoch milliseconds "
                "or an RFC 3339 string",
            )
        return value * 1000
    if not isinstance(value, str):
        kind = "an RFC 3339 string" + (" or epoch milliseconds" if allow_millis else "")
        raise InvalidEvent(field, f"must be {kind}")
    if not _RFC3339_RE.match(value):
        raise InvalidEvent(
            field,
            "must be an RFC 3339 timestamp with a UTC offset, "
            f"such as 2026-12-04T10:15:00.000Z; got {value[:64]!r}",
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise InvalidEvent(field, f"is not a valid date and time: {value!r}") from None
    return to_epoch_micros(parsed)


# ---------------------------------------------------------------- time helpers


def to_epoch_micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_micros() -> int:
    return time.time_ns() // 1000


def format_micros(micros: int) -> str:
    """Format epoch microseconds as RFC 3339 in UTC with microseconds."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def day_to_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def date_to_day(value: date) -> int:
    return (value - date(1970, 1, 1)).days


def parse_day(value: str, field: str) -> int:
    """Parse an ISO calendar date (YYYY-MM-DD) into days since 1970-01-01."""
    try:
        return date_to_day(date.fromisoformat(value))
    except (TypeError, ValueError):
        raise InvalidEvent(
            field, f"must be a date as YYYY-MM-DD, got {value!r}"
        ) from None


# ---------------------------------------------------------------- ids


class _UUIDv7Generator:
    """RFC 9562 UUIDv7: 48-bit milliseconds, then a counter, then random bits.

    Ids from one process are strictly increasing, also within a millisecond.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                self._counter += 1
                if self._counter >= 1 << 12:
                    self._last_ms += 1
                    self._counter = 0
                ms = self._last_ms
            else:
                self._counter = 0
            self._last_ms = ms
            counter = self._counter
        tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
        return str(uuid.UUID(int=value))


new_message_id = _UUIDv7Generator()


def new_event_id() -> str:
    return str(uuid.uuid4())


def uuid7_millis(value: str) -> int | None:
    """Return the Unix milliseconds of a UUIDv7, or None for other versions."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        return None
    return parsed.int >> 80


def make_event(
    event_type: EventType,
    *,
    message_id: str,
    user: str,
    occurred_at: int | None = None,
    body: str | None = None,
    started_at: int | None = None,
    duration_ms: int | None = None,
    event_id: str | None = None,
) -> Event:
    """Build an event with a fresh event id; times default to now."""
    occurred = now_micros() if occurred_at is None else occurred_at
    return Event(
        event_id=event_id or new_event_id(),
        type=event_type,
        occurred_at=occurred,
        message_id=message_id,
        user=user,
        body=body,
        created_at=occurred if event_type == "MessagePosted" else None,
        started_at=started_at,
        duration_ms=duration_ms,
    )
