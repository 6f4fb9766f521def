"""Archive rows, file names and Parquet files, without any service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.events import EventType, make_event, parse_timestamp
from batch_backfill.archiver import PartitionBuffer
from batch_backfill.rows import build_row, kafka_timestamp_micros, micros_to_date
from batch_backfill.schema import FILE_SCHEMA, INVALID_TYPE
from batch_backfill.sinks import (
    LocalArchiveSink,
    file_name,
    group_rows,
    relative_file_path,
    rows_to_table,
    write_rows,
)

MESSAGE_ID = "00000000-0000-4000-8000-000000000001"
KAFKA_MS = parse_timestamp("2026-05-05T12:00:00Z", "t") // 1000


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def record(value: bytes | None, offset: int = 0, topic: str = "p-likes") -> Record:
    return Record(topic, 2, offset, KAFKA_MS, MESSAGE_ID.encode(), value)


def at(text: str) -> int:
    return parse_timestamp(text, "t")


def test_row_of_message_uses_created_day() -> None:
    event = make_event(
        "MessagePosted",
        message_id=MESSAGE_ID,
        user="alice",
        body="hello",
        occurred_at=at("2026-05-04T23:59:59.999999Z"),
    )
    row = build_row(record(event.to_json(), topic="p-messages"), "messages")

    assert row["type"] == "MessagePosted"
    assert row["date"] == "2026-05-04"
    assert row["topic"] == "p-messages"
    assert row["partition"] == 2
    assert row["key"] == MESSAGE_ID.encode()
    assert row["kafka_timestamp"] == KAFKA_MS * 1000
    assert row["body"] == "hello"
    assert row["created_at"] == event.created_at
    assert row["raw"] is None
    assert row["error"] is None


def test_row_of_view_uses_started_day() -> None:
    event = make_event(
        "ViewRecorded",
        message_id=MESSAGE_ID,
        user="bob",
        occurred_at=at("2026-05-05T00:01:00Z"),
        started_at=at("2026-05-04T23:59:00Z"),
        duration_ms=1200,
    )
    row = build_row(record(event.to_json(), topic="p-views"), "views")

    assert row["type"] == "ViewRecorded"
    assert row["date"] == "2026-05-04"
    assert row["started_at"] == at("2026-05-04T23:59:00Z")
    assert row["duration_ms"] == 1200


def test_row_of_unlike_uses_occurred_day() -> None:
    event = make_event(
        "LikeRemoved",
        message_id=MESSAGE_ID,
        user="bob",
        occurred_at=at("2026-05-06T00:00:00Z"),
    )
    row = build_row(record(event.to_json()), "likes")

    assert row["type"] == "LikeRemoved"
    assert row["date"] == "2026-05-06"
    assert row["event_id"] == event.event_id
    assert row["body"] is None


@pytest.mark.parametrize(
    ("value", "error_start"),
    [
        (b"{not json", "$: is not valid UTF-8 JSON"),
        (None, "$: record has no value"),
        (
            make_event(
                "MessagePosted", message_id=MESSAGE_ID, user="a", body="x"
            ).to_json(),
            "type: MessagePosted belongs on topic 'messages'",
        ),
    ],
)
def test_row_of_rejected_record_is_invalid(
    value: bytes | None, error_start: str
) -> None:
    row = build_row(record(value), "likes")

    assert row["type"] == INVALID_TYPE
    assert row["date"] == "2026-05-05"
    assert row["raw"] == value
    assert row["error"].startswith(error_start), row["error"]
    assert row["event_id"] is None
    assert row["offset"] == 0


def test_row_of_view_beyond_year_9999_is_invalid() -> None:
    view = make_event(
        "ViewRecorded",
        message_id=MESSAGE_ID,
        user="bob",
        started_at=0,
        duration_ms=5,
    ).to_dict()
    view["started_at"] = 10**17  # epoch milliseconds, about the year 3 million
    row = build_row(record(orjson.dumps(view), topic="p-views"), "views")

    assert row["type"] == INVALID_TYPE
    assert row["error"] == "started_at: is outside the years 1 to 9999"


def test_invalid_row_without_timestamp_dates_1970() -> None:
    row = build_row(Record("p-likes", 0, 7, -1, None, b"[]"), "likes")

    assert row["kafka_timestamp"] is None
    assert row["date"] == "1970-01-01"


def test_kafka_timestamp_micros_limits() -> None:
    assert kafka_timestamp_micros(-1) is None
    assert kafka_timestamp_micros(None) is None
    assert kafka_timestamp_micros(1) == 1000
    assert kafka_timestamp_micros(2**62) is None


def test_micros_to_date_floors_negative() -> None:
    assert micros_to_date(-1) == "1969-12-31"
    assert micros_to_date(0) == "1970-01-01"


def test_file_name_carries_offsets() -> None:
    assert file_name("p-likes", 3, 100, 149) == "p-likes-p3-100-149.parquet"
    assert relative_file_path("LikeAdded", "2026-05-05", "p-likes", 3, 100, 149) == (
        "type=LikeAdded/date=2026-05-05/p-likes-p3-100-149.parquet"
    )


def like_rows() -> list[dict[str, object]]:
    """Return rows of offsets 0 to 4 of one partition; offset 4 is invalid."""
    rows = []
    likes: list[tuple[EventType, str]] = [
        ("LikeAdded", "05"),
        ("LikeRemoved", "05"),
        ("LikeAdded", "06"),
        ("LikeAdded", "05"),
    ]
    for offset, (kind, day) in enumerate(likes):
        event = make_event(
            kind,
            message_id=MESSAGE_ID,
            user="u",
            occurred_at=at(f"2026-05-{day}T10:00:00Z"),
        )
        rows.append(build_row(record(event.to_json(), offset), "likes"))
    rows.append(build_row(record(b"bad", len(rows)), "likes"))
    return rows


def test_group_rows_by_type_and_date() -> None:
    groups = group_rows(like_rows())

    assert {key: [row["offset"] for row in rows] for key, rows in groups.items()} == {
        ("LikeAdded", "2026-05-05"): [0, 3],
        ("LikeRemoved", "2026-05-05"): [1],
        ("LikeAdded", "2026-05-06"): [2],
        (INVALID_TYPE, "2026-05-05"): [4],
    }


def test_write_rows_one_file_per_partition_folder(tmp_path: Path) -> None:
    written = write_rows(LocalArchiveSink(tmp_path), like_rows())

    paths = sorted(Path(item.path).relative_to(tmp_path).as_posix() for item in written)
    assert paths == [
        "type=LikeAdded/date=2026-05-05/p-likes-p2-0-3.parquet",
        "type=LikeAdded/date=2026-05-06/p-likes-p2-2-2.parquet",
        "type=LikeRemoved/date=2026-05-05/p-likes-p2-1-1.parquet",
        "type=_invalid/date=2026-05-05/p-likes-p2-4-4.parquet",
    ]
    assert sum(item.rows for item in written) == 5
    assert not list(tmp_path.rglob(".*")), "a temporary file was left behind"
    # ParquetFile reads the file alone, without the partitions of its path.
    table = pq.ParquetFile(tmp_path / paths[0]).read()
    assert table.schema.equals(FILE_SCHEMA)
    assert table.column("offset").to_pylist() == [0, 3]


def test_write_rows_again_overwrites_same_file(tmp_path: Path) -> None:
    rows = like_rows()
    first = write_rows(LocalArchiveSink(tmp_path), rows)
    second = write_rows(LocalArchiveSink(tmp_path), rows)

    assert [item.path for item in first] == [item.path for item in second]
    assert len(list(tmp_path.rglob("*.parquet"))) == 4


def test_write_rows_rejects_two_partitions(tmp_path: Path) -> None:
    rows = like_rows()
    rows[1] = {**rows[1], "partition": 5}

    with pytest.raises(ValueError, match="one topic partition"):
        write_rows(LocalArchiveSink(tmp_path), rows)


def test_table_timestamps_are_utc_micros() -> None:
    table = rows_to_table(like_rows())

    for name in ("kafka_timestamp", "occurred_at", "created_at", "started_at"):
        assert table.schema.field(name).type == pa.timestamp("us", tz="UTC")
    assert table.column("occurred_at")[0].value == at("2026-05-05T10:00:00Z")


def test_buffer_due_at_row_count() -> None:
    buffer = PartitionBuffer()
    for offset in range(3):
        buffer.add({"offset": offset}, now=100.0)

    assert buffer.is_due(100.0, max_rows=3, max_age=60.0)
    assert not buffer.is_due(100.0, max_rows=4, max_age=60.0)
    assert buffer.first_offset == 0
    assert buffer.last_offset == 2


def test_buffer_due_at_age_of_first_row() -> None:
    buffer = PartitionBuffer()
    buffer.add({"offset": 0}, now=100.0)
    buffer.add({"offset": 1}, now=150.0)

    assert not buffer.is_due(159.9, max_rows=10, max_age=60.0)
    assert buffer.is_due(160.0, max_rows=10, max_age=60.0)


def test_buffer_not_due_before_retry_or_empty() -> None:
    buffer = PartitionBuffer()
    assert not buffer.is_due(1000.0, max_rows=1, max_age=0.0)
    buffer.add({"offset": 0}, now=0.0)
    buffer.retry_at = 50.0

    assert not buffer.is_due(49.0, max_rows=1, max_age=0.0)
    assert buffer.is_due(50.0, max_rows=1, max_age=0.0)
