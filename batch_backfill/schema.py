"""Parquet schema and Hive-style layout of the event archive.

Each file contains rows of one event type and one UTC day, under
``type=<Type>/date=<YYYY-MM-DD>/``. ``type`` and ``date`` are Hive partition
columns: they live in the path only, as Hive, Spark and pyarrow expect, and
a reader gets them back by reading the folder with Hive partitioning.
"""

from __future__ import annotations

import pyarrow as pa

# Type of an archived record that ``decode_event`` rejected.
INVALID_TYPE = "_invalid"
VALID_TYPES = ("MessagePosted", "LikeAdded", "LikeRemoved", "ViewRecorded")
PARTITION_COLUMNS = ("type", "date")

UTC_MICROS = pa.timestamp("us", tz="UTC")

FILE_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("kafka_timestamp", UTC_MICROS),
        pa.field("key", pa.binary()),
        pa.field("event_id", pa.string()),
        pa.field("occurred_at", UTC_MICROS),
        pa.field("message_id", pa.string()),
        pa.field("user", pa.string()),
        pa.field("body", pa.string()),
        pa.field("created_at", UTC_MICROS),
        pa.field("started_at", UTC_MICROS),
        pa.field("duration_ms", pa.int64()),
        pa.field("raw", pa.binary()),
        pa.field("error", pa.string()),
    ]
)

PARTITION_SCHEMA = pa.schema(
    [pa.field("type", pa.string()), pa.field("date", pa.string())]
)

# Options of every pyarrow.parquet.write_table call: UTC microsecond
# TIMESTAMP columns (isAdjustedToUTC=true), never INT96.
PARQUET_WRITE_OPTIONS = {
    "compression": "snappy",
    "coerce_timestamps": "us",
    "allow_truncated_timestamps": False,
    "use_deprecated_int96_timestamps": False,
}
