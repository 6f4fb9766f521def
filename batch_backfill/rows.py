"""Turn Kafka records into archive rows, one row per record.

A row is a dict with the columns of :data:`batch_backfill.schema.FILE_SCHEMA`
plus the partition columns ``type`` and ``date``. Times are UTC epoch
microseconds. A record that :func:`app.events.decode_event` rejects becomes
a row of type ``_invalid`` with its ``raw`` value and the ``error``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from app.events import (
    MICROS_PER_DAY,
    Event,
    InvalidEvent,
    day_to_date,
    decode_event,
    to_epoch_micros,
)
from batch_backfill.schema import INVALID_TYPE

# Parquet, Spark and Python dates all cover the years 1 to 9999.
MIN_MICROS = to_epoch_micros(datetime(1, 1, 1, tzinfo=UTC))
MAX_MICROS = to_epoch_micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
EPOCH_DATE = "1970-01-01"

Row = dict[str, Any]


class KafkaRecord(Protocol):
    """The fields of an aiokafka ``ConsumerRecord`` that the archive keeps."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def build_row(record: KafkaRecord, logical_topic: str) -> Row:
    """Build the archive row of one record read from ``logical_topic``.

    ``logical_topic`` is the topic name without the deployment prefix
    (``messages``, ``likes`` or ``views``), which ``decode_event`` checks the
    event type against.
    """
    row: Row = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "kafka_timestamp": kafka_timestamp_micros(record.timestamp),
        "key": record.key,
    }
    try:
        event = decode_record_value(record.value, logical_topic)
    except InvalidEvent as error:
        return _with_invalid_fields(row, record.value, str(error))
    row.update(event_columns(event))
    row["type"] = event.type
    row["date"] = micros_to_date(event.event_time)
    return row


def decode_record_value(value: bytes | None, logical_topic: str) -> Event:
    """Decode a record value, and reject times that Parquet dates cannot hold."""
    if value is None:
        raise InvalidEvent("$", "record has no value (tombstone)")
    event = decode_event(value, expected_topic=logical_topic)
    for field in ("occurred_at", "created_at", "started_at"):
        micros = getattr(event, field)
        if micros is not None and not MIN_MICROS <= micros <= MAX_MICROS:
            # Only an epoch-milliseconds started_at can get here, and it is
            # then far beyond check_view_timing's 5-minute limit, so the
            # stream rejects the view as well.
            raise InvalidEvent(field, "is outside the years 1 to 9999")
    return event


def event_columns(event: Event) -> Row:
    return {
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "message_id": event.message_id,
        "user": event.user,
        "body": event.body,
        "created_at": event.created_at,
        "started_at": event.started_at,
        "duration_ms": event.duration_ms,
        "raw": None,
        "error": None,
    }


def _with_invalid_fields(row: Row, value: bytes | None, error: str) -> Row:
    for name in (
        "event_id",
        "occurred_at",
        "message_id",
        "user",
        "body",
        "created_at",
        "started_at",
        "duration_ms",
    ):
        row[name] = None
    row["raw"] = value
    row["error"] = error
    row["type"] = INVALID_TYPE
    timestamp = row["kafka_timestamp"]
    row["date"] = EPOCH_DATE if timestamp is None else micros_to_date(timestamp)
    return row


def kafka_timestamp_micros(timestamp_ms: int | None) -> int | None:
    """Convert a Kafka record timestamp to microseconds; None when it is unset.

    Kafka uses -1 for "no timestamp"; values outside the years 1 to 9999 are
    treated the same way.
    """
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    micros = timestamp_ms * 1000
    if micros > MAX_MICROS:
        return None
    return micros


def micros_to_date(micros: int) -> str:
    """Return the UTC calendar day of epoch microseconds as YYYY-MM-DD."""
    return day_to_date(micros // MICROS_PER_DAY).isoformat()
