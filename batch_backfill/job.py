"""Spark backfill: recompute every figure from the archive into MongoDB batch views.

Run it with ``spark-submit batch_backfill/job.py --from D --to D`` or with
``python -m batch_backfill.cli backfill --from D --to D``. The job reads the
whole archive, because totals and like states depend on all earlier events,
and replaces the per-day batch views of the days from ``--from`` to ``--to``
and the totals views whole. ``docs/batch.md`` lists the spark-submit flags.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.database import Database
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from app.events import InvalidEvent, parse_day
from app.logs import configure_logging
from app.settings import Settings, SettingsError
from batch_backfill import aggregates, batch_views
from batch_backfill.aggregates import ACCEPTED, Figures
from batch_backfill.spark import (
    build_session,
    configure_existing_session,
    to_spark_path,
)

logger = logging.getLogger(__name__)


@dataclass
class BackfillSummary:
    """Counts of one backfill: rows read, offsets per status, documents written."""

    from_day: int
    to_day: int
    archive: str
    rows_read: int = 0
    status_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def offset_duplicates(self) -> int:
        return self.rows_read - sum(self.status_counts.values())

    def count(self, status: str, event_type: str | None = None) -> int:
        return sum(
            number
            for (kind, state), number in self.status_counts.items()
            if state == status and event_type in (None, kind)
        )

    def format(self) -> str:
        lines = [
            f"backfill of {batch_views.day_text(self.from_day)} to "
            f"{batch_views.day_text(self.to_day)} from {self.archive} "
            f"took {self.seconds:.1f} s",
            f"archived rows read: {self.rows_read} "
            f"({self.offset_duplicates} re-archived duplicates dropped)",
        ]
        for (event_type, status), number in sorted(self.status_counts.items()):
            lines.append(f"  {event_type:14} {status:16} {number}")
        for collection, number in self.documents.items():
            lines.append(f"{collection}: {number} documents written")
        return "\n".join(lines)


def run_backfill(
    settings: Settings,
    from_day: int,
    to_day: int,
    spark: SparkSession,
    s3_scheme: str = "s3a",
) -> BackfillSummary:
    """Recompute the batch views of ``from_day`` to ``to_day`` (days since 1970).

    ``s3_scheme`` is the scheme Spark reads an S3 archive with.
    Raises ValueError when ``to_day`` is before ``from_day``.
    """
    if to_day < from_day:
        raise ValueError("the last day of a backfill must not be before the first")
    started = time.monotonic()
    configure_existing_session(spark, settings)
    path = to_spark_path(settings.archive_url, s3_scheme)
    summary = BackfillSummary(from_day, to_day, path)

    logger.info("reading archive %s", path)
    rows = aggregates.read_archive(spark, path)
    summary.rows_read = rows.count()
    classified = aggregates.classify(rows, settings.retention_days)
    # Persist the posts first, because the likes read their authors from them.
    posts = classified.posts.persist(StorageLevel.MEMORY_AND_DISK)
    tallies = aggregates.tally(classified.rest).persist(StorageLevel.MEMORY_AND_DISK)
    summary.status_counts = aggregates.status_counts(posts, tallies)
    logger.info(
        "classified %d archived rows: %d accepted",
        summary.rows_read,
        summary.count(ACCEPTED),
    )

    messages = aggregates.scored_messages(posts).persist(StorageLevel.MEMORY_AND_DISK)
    activity = aggregates.activity(tallies).persist(StorageLevel.MEMORY_AND_DISK)
    figures = aggregates.compute_figures(messages, activity)
    client: MongoClient[batch_views.Document] = MongoClient(settings.mongo_url)
    try:
        db = client[settings.mongo_db]
        batch_views.ensure_indexes(db)
        summary.documents = write_figures(db, figures, from_day, to_day)
    finally:
        client.close()
        for frame in (activity, messages, tallies, posts):
            frame.unpersist()
    summary.seconds = time.monotonic() - started
    return summary


def write_figures(
    db: Database[batch_views.Document],
    figures: Figures,
    from_day: int,
    to_day: int,
) -> dict[str, int]:
    """Write every batch view; return the documents written per collection."""
    written = {}
    daily = {
        row["day"]: row.asDict()
        for row in in_range(figures.daily, from_day, to_day).collect()
    }
    written[batch_views.BATCH_DAILY] = batch_views.replace_days(
        db,
        batch_views.BATCH_DAILY,
        (
            batch_views.daily_document(day, daily.get(day))
            for day in range(from_day, to_day + 1)
        ),
        from_day,
        to_day,
    )
    per_day = {
        batch_views.BATCH_USER_DAILY: (
            figures.user_daily,
            batch_views.user_daily_document,
        ),
        batch_views.BATCH_MESSAGE_DAILY: (
            figures.message_daily,
            batch_views.message_daily_document,
        ),
    }
    for collection, (frame, build) in per_day.items():
        logger.info("writing %s", collection)
        documents = (
            build(row.asDict())
            for row in in_range(frame, from_day, to_day).toLocalIterator()
        )
        written[collection] = batch_views.replace_days(
            db, collection, documents, from_day, to_day
        )
    totals = {
        batch_views.BATCH_USER_TOTALS: (
            figures.user_totals,
            batch_views.user_total_document,
        ),
        batch_views.BATCH_MESSAGE_TOTALS: (
            figures.message_totals,
            batch_views.message_total_document,
        ),
    }
    for collection, (frame, build) in totals.items():
        logger.info("writing %s", collection)
        documents = (build(row.asDict()) for row in frame.toLocalIterator())
        written[collection] = batch_views.replace_all(db, collection, documents)
    return written


def in_range(frame: DataFrame, from_day: int, to_day: int) -> DataFrame:
    return frame.where(F.col("day").between(from_day, to_day))


# ---------------------------------------------------------------- command line


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_date",
        required=True,
        metavar="YYYY-MM-DD",
        help="first UTC day to recompute",
    )
    parser.add_argument(
        "--to",
        dest="to_date",
        required=True,
        metavar="YYYY-MM-DD",
        help="last UTC day to recompute (inclusive)",
    )
    parser.add_argument(
        "--master",
        help="Spark master URL such as local[2] or spark://127.0.0.1:7077 "
        "(default: SOCIALSTREAM_SPARK_MASTER, or spark-submit's --master)",
    )
    parser.add_argument(
        "--s3-scheme",
        choices=["s3a", "s3"],
        default="s3a",
        help="scheme Spark reads an s3:// archive with: s3a (hadoop-aws, the "
        "default) or s3 (a cluster's own connector, such as EMRFS)",
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark configuration, repeatable",
    )


def parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    conf = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--conf takes KEY=VALUE, got {pair!r}")
        conf[key] = value
    return conf


def backfill(
    settings: Settings,
    from_day: int,
    to_day: int,
    *,
    master: str | None = None,
    s3_scheme: str = "s3a",
    extra_conf: dict[str, str] | None = None,
) -> BackfillSummary:
    """Start a Spark session, recompute the batch views of the days and stop it.

    Raises ValueError for an empty range or a missing local archive folder,
    before Spark starts.
    """
    if to_day < from_day:
        raise ValueError("the last day (--to) must not be before the first (--from)")
    archive = to_spark_path(settings.archive_url, s3_scheme)
    if not settings.archive_is_s3 and not Path(archive).is_dir():
        raise ValueError(
            f"archive folder {settings.archive_url} does not exist; set "
            "SOCIALSTREAM_ARCHIVE_URL or run the archiver first"
        )
    spark = build_session(settings, master=master, extra=extra_conf)
    try:
        return run_backfill(settings, from_day, to_day, spark, s3_scheme)
    finally:
        spark.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="batch_backfill/job.py", description=__doc__.splitlines()[0]
    )
    add_backfill_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return run_backfill_command(settings, args)


def run_backfill_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run the backfill for the command line; return the exit code."""
    # py4j logs every gateway connection at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        summary = backfill(
            settings,
            parse_day(args.from_date, "--from"),
            parse_day(args.to_date, "--to"),
            master=args.master,
            s3_scheme=args.s3_scheme,
            extra_conf=parse_conf(args.conf),
        )
    except (InvalidEvent, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except AnalysisException as error:
        print(
            f"error: reading the archive {settings.archive_url} failed: {error}",
            file=sys.stderr,
        )
        return 1
    print(summary.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
