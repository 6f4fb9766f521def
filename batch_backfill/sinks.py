"""Write archive rows as Parquet files to S3 or a local folder.

A file's path relative to the archive root is
``type=<Type>/date=<YYYY-MM-DD>/<topic>-p<partition>-<first>-<last>.parquet``,
where first and last are the smallest and largest Kafka offsets of the rows
in it. Archiving the same offsets again
therefore overwrites the same file, and two files with the same name always
contain the same rows.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from app.settings import Settings
from app.storage import s3_filesystem
from batch_backfill.rows import Row
from batch_backfill.schema import FILE_SCHEMA, PARQUET_WRITE_OPTIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One Parquet file written by :func:`write_rows`."""

    path: str
    event_type: str
    date: str
    rows: int
    first_offset: int
    last_offset: int


class ArchiveSink(Protocol):
    """Storage for archive files, addressed by paths relative to the root."""

    @property
    def url(self) -> str: ...

    def write_table(self, relative_path: str, table: pa.Table) -> str:
        """Write ``table`` durably and return the full path of the file."""
        ...


class LocalArchiveSink:
    """An archive in a local folder.

    Each file is written to a hidden temporary name, flushed with fsync and
    renamed into place, so readers see whole files only.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def write_table(self, relative_path: str, table: pa.Table) -> str:
        target = self.root / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        # A leading dot hides the partial file from Spark and pyarrow readers.
        temporary = target.with_name(f".{target.name}.tmp")
        with temporary.open("wb") as out:
            pq.write_table(table, out, **PARQUET_WRITE_OPTIONS)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        _fsync_folder(target.parent)
        return str(target)


class S3ArchiveSink:
    """An archive under ``s3://bucket/prefix``.

    S3 makes an object visible only when its upload completes, which s3fs
    does when the file is closed, so a file is either whole or absent.
    """

    def __init__(self, filesystem: Any, bucket: str, prefix: str) -> None:
        self.filesystem = filesystem
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def url(self) -> str:
        return f"s3://{self.root}"

    @property
    def root(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def write_table(self, relative_path: str, table: pa.Table) -> str:
        path = f"{self.root}/{relative_path}"
        with self.filesystem.open(path, "wb") as out:
            pq.write_table(table, out, **PARQUET_WRITE_OPTIONS)
        return f"s3://{path}"


def open_sink(settings: Settings) -> ArchiveSink:
    """Return the sink for ``settings.archive_url`` (s3:// or a folder)."""
    parsed = urlparse(settings.archive_url)
    if parsed.scheme in {"s3", "s3a"}:
        if not parsed.netloc:
            raise ValueError(
                f"archive URL {settings.archive_url!r} has no bucket; "
                "use s3://bucket/prefix"
            )
        return S3ArchiveSink(s3_filesystem(settings), parsed.netloc, parsed.path)
    if parsed.scheme not in {"", "file"}:
        raise ValueError(
            f"archive URL {settings.archive_url!r} is not supported; "
            "use s3://bucket/prefix or a local folder"
        )
    folder = parsed.path if parsed.scheme else settings.archive_url
    return LocalArchiveSink(Path(folder))


def file_name(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    return f"{topic}-p{partition}-{first_offset}-{last_offset}.parquet"


def relative_file_path(
    event_type: str, date: str, topic: str, partition: int, first: int, last: int
) -> str:
    name = file_name(topic, partition, first, last)
    return f"type={event_type}/date={date}/{name}"


def group_rows(rows: Iterable[Row]) -> dict[tuple[str, str], list[Row]]:
    """Group rows by their (type, date) partition, keeping their order."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["type"], row["date"])].append(row)
    return dict(groups)


def rows_to_table(rows: list[Row]) -> pa.Table:
    columns = {field.name: [row[field.name] for row in rows] for field in FILE_SCHEMA}
    return pa.Table.from_pydict(columns, schema=FILE_SCHEMA)


def write_rows(sink: ArchiveSink, rows: list[Row]) -> list[WrittenFile]:
    """Write the rows of one topic partition, one file per (type, date).

    Raises ValueError when the rows come from more than one topic partition.
    """
    if not rows:
        return []
    topic, partition = rows[0]["topic"], rows[0]["partition"]
    if any(row["topic"] != topic or row["partition"] != partition for row in rows):
        raise ValueError("write_rows takes the rows of one topic partition only")
    written = []
    for (event_type, date), group in sorted(group_rows(rows).items()):
        first = min(row["offset"] for row in group)
        last = max(row["offset"] for row in group)
        relative = relative_file_path(event_type, date, topic, partition, first, last)
        path = sink.write_table(relative, rows_to_table(group))
        written.append(WrittenFile(path, event_type, date, len(group), first, last))
    return written


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
