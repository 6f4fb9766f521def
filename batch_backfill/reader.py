"""Read the Parquet event archive with pyarrow (replay and checks).

The Spark backfill reads the archive with Spark instead; see
:mod:`batch_backfill.job`.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pyarrow.dataset as ds

from app.settings import Settings
from app.storage import s3_filesystem
from batch_backfill.schema import FILE_SCHEMA, PARTITION_SCHEMA


class ArchiveNotFound(FileNotFoundError):
    """The configured archive location does not exist."""


def archive_dataset(settings: Settings) -> ds.Dataset:
    """Return the archive at ``settings.archive_url`` as a Hive-partitioned dataset.

    Raises ArchiveNotFound when the location does not exist.
    """
    partitioning = ds.partitioning(PARTITION_SCHEMA, flavor="hive")
    schema = FILE_SCHEMA
    for field in PARTITION_SCHEMA:
        schema = schema.append(field)
    parsed = urlparse(settings.archive_url)
    if parsed.scheme in {"s3", "s3a"}:
        filesystem = s3_filesystem(settings)
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        if not filesystem.exists(root):
            raise ArchiveNotFound(f"archive {settings.archive_url} does not exist")
        return ds.dataset(
            root,
            schema=schema,
            format="parquet",
            partitioning=partitioning,
            filesystem=filesystem,
        )
    root = parsed.path if parsed.scheme == "file" else settings.archive_url
    try:
        return ds.dataset(
            root, schema=schema, format="parquet", partitioning=partitioning
        )
    except FileNotFoundError:
        raise ArchiveNotFound(f"archive folder {root} does not exist") from None
