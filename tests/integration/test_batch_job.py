"""The Spark backfill on a hand-built archive, with figures worked out by hand.

The archive contains every hard case of the counting rules: a double like, an
unlike without a like, like-unlike-unlike, like-unlike-like, duplicate event
ids (one of them with a different payload on a lower partition), a
re-archived file, invalid records, a late view, a view 5 minutes ahead, a
like of a message that was never posted, a second post of a message id and
events at both edges of a UTC day.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from app.events import parse_timestamp
from app.settings import PROJECT_ROOT, Settings
from app.storage import s3_filesystem
from batch_backfill import aggregates, batch_views
from batch_backfill.job import run_backfill
from batch_backfill.rows import Row, build_row
from batch_backfill.sinks import LocalArchiveSink, S3ArchiveSink, write_rows
from batch_backfill.spark import (
    default_tools_dir,
    s3a_jars,
    session_conf,
    start_session,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]

PREFIX = "bt-"
D0, D1, D2 = "2026-01-31", "2026-03-01", "2026-03-02"
M1 = "00000000-0000-4000-8000-0000000000a1"
M2 = "00000000-0000-4000-8000-0000000000a2"
M3 = "00000000-0000-4000-8000-0000000000a3"
MX = "00000000-0000-4000-8000-0000000000ff"  # never posted
BODIES = {
    M1: "I love this, it is wonderful!",
    M2: "This is terrible and awful.",
    M3: "The meeting is at noon.",
}
COLLECTIONS = (*batch_views.DAILY_COLLECTIONS, *batch_views.TOTALS_COLLECTIONS)


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def event_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def micros(text: str) -> int:
    return parse_timestamp(text, "test")


def post(number: int, message_id: str, user: str, at: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id(number),
        "type": "MessagePosted",
        "occurred_at": at,
        "message_id": message_id,
        "user": user,
        "body": BODIES[message_id],
        "created_at": at,
    }


def like(number: int, kind: str, message_id: str, user: str, at: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id(number),
        "type": kind,
        "occurred_at": at,
        "message_id": message_id,
        "user": user,
    }


def view(
    number: int,
    message_id: str,
    user: str,
    occurred: str,
    started: str | int,
    duration_ms: int,
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id(number),
        "type": "ViewRecorded",
        "occurred_at": occurred,
        "message_id": message_id,
        "user": user,
        "started_at": started,
        "duration_ms": duration_ms,
    }


# (partition, value) per topic, in offset order. A bytes value is sent as is.
# fmt: off
MESSAGES: list[tuple[int, dict[str, Any] | bytes]] = [
    (0, post(1, M1, "alice", f"{D1}T10:00:00Z")),
    (0, post(2, M2, "bob", f"{D1}T23:59:59.999999Z")),
    (0, post(1, M1, "alice", f"{D1}T10:00:00Z")),  # resent: duplicate event id
    (0, b'{"type": "MessagePosted", "event_id": '),  # invalid JSON
    (1, post(3, M3, "alice", f"{D2}T00:00:00Z")),
    (1, post(4, M1, "carol", f"{D2}T08:00:00Z")),  # second post of M1: rejected
]
LIKES: list[tuple[int, dict[str, Any] | bytes]] = [
    (0, like(10, "LikeAdded", M1, "dave", f"{D1}T11:00:00Z")),  # like
    (0, like(11, "LikeAdded", M1, "dave", f"{D1}T11:01:00Z")),  # double like
    (0, like(12, "LikeRemoved", M1, "erin", f"{D1}T12:00:00Z")),  # unlike, no like
    (0, like(13, "LikeAdded", M1, "frank", f"{D1}T13:00:00Z")),  # like
    (0, like(14, "LikeRemoved", M1, "frank", f"{D2}T01:00:00Z")),  # unlike
    (0, like(15, "LikeRemoved", M1, "frank", f"{D2}T02:00:00Z")),  # second unlike
    (0, like(16, "LikeAdded", M1, "gina", f"{D2}T03:00:00Z")),  # like
    (0, like(17, "LikeRemoved", M1, "gina", f"{D2}T04:00:00Z")),  # unlike
    (0, like(18, "LikeAdded", M1, "gina", f"{D2}T05:00:00Z")),  # like again
    (0, like(19, "LikeRemoved", M1, "dave", f"{D2}T06:00:00Z")),  # unlike
    # A resent like of dave: applied again it would count a like on D1.
    (0, like(10, "LikeAdded", M1, "dave", f"{D1}T11:00:00Z")),
    (1, like(20, "LikeAdded", M2, "alice", f"{D1}T09:00:00Z")),  # like
    (1, like(21, "LikeAdded", MX, "alice", f"{D1}T09:30:00Z")),  # never posted
    (1, like(22, "LikeAdded", MX, "bob", f"{D1}T09:40:00Z")),  # never posted
    (1, post(5, M2, "bob", f"{D1}T09:00:00Z")),  # wrong topic: invalid
]
VIEWS: list[tuple[int, dict[str, Any] | bytes]] = [
    (0, view(30, M1, "carol", f"{D1}T10:31:00Z", f"{D1}T10:30:00Z", 1500)),
    # started_at in epoch milliseconds
    (0, view(31, M1, "carol", f"{D2}T09:00:10Z",
             micros(f"{D2}T09:00:00Z") // 1000, 2500)),
    # 40 days old at the time it was reported: beyond the 30-day retention
    (0, view(32, M1, "erin", f"{D1}T12:00:00Z", "2026-01-20T08:00:00Z", 800)),
    # 29 days old: the oldest day the retention accepts
    (0, view(33, M1, "erin", f"{D1}T12:00:00Z", f"{D0}T08:00:00Z", 1000)),
    # 5 minutes and 1 microsecond ahead of occurred_at: rejected
    (0, view(34, M3, "frank", f"{D2}T10:00:00Z", f"{D2}T10:05:00.000001Z", 600)),
    # exactly 5 minutes ahead: accepted
    (0, view(35, M3, "frank", f"{D2}T10:00:00Z", f"{D2}T10:05:00Z", 700)),
    # same event id as the first view of partition 1, which it precedes
    (0, view(36, M2, "dave", f"{D1}T23:05:00Z", f"{D1}T23:00:00Z", 9999)),
    (1, view(36, M2, "dave", f"{D1}T23:05:00Z", f"{D1}T23:00:00Z", 4000)),
    (1, view(37, MX, "erin", f"{D2}T12:01:00Z", f"{D2}T12:00:00Z", 300)),
    (1, view(38, M2, "erin", f"{D2}T12:01:00Z", f"{D2}T12:00:00Z", 0)),  # invalid
]
# fmt: on
TOPICS = {"messages": MESSAGES, "likes": LIKES, "views": VIEWS}
RECORDS = sum(len(records) for records in TOPICS.values())
REARCHIVED = (("likes", 0), 3, 6)  # likes partition 0, offsets 3 to 6 again


def archive_rows() -> dict[tuple[str, int], list[Row]]:
    """Return the archive rows of every topic partition, offsets from 0."""
    rows: dict[tuple[str, int], list[Row]] = {}
    for logical, records in TOPICS.items():
        for partition, value in records:
            partition_rows = rows.setdefault((logical, partition), [])
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            record = FakeRecord(
                topic=f"{PREFIX}{logical}",
                partition=partition,
                offset=len(partition_rows),
                timestamp=micros(f"{D1}T12:00:00Z") // 1000,
                key=b"key",
                value=raw,
            )
            partition_rows.append(build_row(record, logical))
    return rows


def write_sample_archive(sink: LocalArchiveSink | S3ArchiveSink) -> None:
    rows = archive_rows()
    for partition_rows in rows.values():
        write_rows(sink, partition_rows)
    key, first, last = REARCHIVED
    write_rows(sink, rows[key][first : last + 1])


def units(message_id: str) -> int:
    scores = SentimentIntensityAnalyzer().polarity_scores(BODIES[message_id])
    return round(float(scores["compound"]) * 10_000)


def expected_daily() -> dict[str, dict[str, Any]]:
    d1_sum = units(M1) + units(M2)
    return {
        D1: {
            "_id": D1,
            "day": D1,
            "messages": 2,
            "likes": 3,
            "unlikes": 0,
            "view_ms": 1500 + 9999,
            "views": 2,
            "sentiment": {
                "count": 2,
                "compound_sum": d1_sum,
                "mean_compound": round(d1_sum / 2 / 10_000, 4),
                "positive": 1,
                "neutral": 0,
                "negative": 1,
            },
        },
        D2: {
            "_id": D2,
            "day": D2,
            "messages": 1,
            "likes": 2,
            "unlikes": 3,
            "view_ms": 2500 + 700 + 300,
            "views": 3,
            "sentiment": {
                "count": 1,
                "compound_sum": units(M3),
                "mean_compound": round(units(M3) / 10_000, 4),
                "positive": 0,
                "neutral": 1,
                "negative": 0,
            },
        },
    }


def user_day(
    user: str,
    day: str,
    messages: int = 0,
    likes_given: int = 0,
    likes_received: int = 0,
    view_ms: int = 0,
    views: int = 0,
) -> dict[str, Any]:
    return {
        "_id": f"{user}|{day}",
        "user": user,
        "day": day,
        "messages": messages,
        "likes_given": likes_given,
        "likes_received": likes_received,
        "view_ms": view_ms,
        "views": views,
    }


EXPECTED_USER_DAILY = {
    document["_id"]: document
    for document in [
        user_day("alice", D1, messages=1, likes_given=1, likes_received=2),
        user_day("alice", D2, messages=1, likes_received=2),
        user_day("bob", D1, messages=1, likes_received=1),
        user_day("dave", D1, likes_given=1, view_ms=9999, views=1),
        user_day("frank", D1, likes_given=1),
        user_day("frank", D2, view_ms=700, views=1),
        user_day("gina", D2, likes_given=2),
        user_day("carol", D1, view_ms=1500, views=1),
        user_day("carol", D2, view_ms=2500, views=1),
        user_day("erin", D2, view_ms=300, views=1),
    ]
}
EXPECTED_USER_TOTALS = {
    "alice": {"_id": "alice", "user": "alice", "messages": 2},
    "bob": {"_id": "bob", "user": "bob", "messages": 1},
}
EXPECTED_MESSAGE_DAILY = {
    f"{M1}|{D1}": {"_id": f"{M1}|{D1}", "message_id": M1, "day": D1, "likes": 2},
    f"{M1}|{D2}": {"_id": f"{M1}|{D2}", "message_id": M1, "day": D2, "likes": 2},
    f"{M2}|{D1}": {"_id": f"{M2}|{D1}", "message_id": M2, "day": D1, "likes": 1},
}
EXPECTED_MESSAGE_TOTALS = {
    M1: {
        "_id": M1,
        "message_id": M1,
        "author": "alice",
        "created_day": D1,
        "like_count": 1,
        "view_ms": 1500 + 2500 + 1000,
        "views": 3,
    },
    M2: {
        "_id": M2,
        "message_id": M2,
        "author": "bob",
        "created_day": D1,
        "like_count": 1,
        "view_ms": 9999,
        "views": 1,
    },
    M3: {
        "_id": M3,
        "message_id": M3,
        "author": "alice",
        "created_day": D2,
        "like_count": 0,
        "view_ms": 700,
        "views": 1,
    },
    MX: {
        "_id": MX,
        "message_id": MX,
        "author": None,
        "created_day": None,
        "like_count": 0,
        "view_ms": 300,
        "views": 1,
    },
}


def documents(db: Database[dict[str, Any]], collection: str) -> dict[str, Any]:
    return {document["_id"]: document for document in db[collection].find()}


def assert_expected_views(db: Database[dict[str, Any]]) -> None:
    daily = documents(db, batch_views.BATCH_DAILY)
    for day, expected in expected_daily().items():
        assert daily[day] == expected, day
    assert set(daily) == {D1, D2}
    assert documents(db, batch_views.BATCH_USER_DAILY) == EXPECTED_USER_DAILY
    assert documents(db, batch_views.BATCH_USER_TOTALS) == EXPECTED_USER_TOTALS
    assert documents(db, batch_views.BATCH_MESSAGE_DAILY) == EXPECTED_MESSAGE_DAILY
    assert documents(db, batch_views.BATCH_MESSAGE_TOTALS) == EXPECTED_MESSAGE_TOTALS


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf = session_conf(
        Settings.from_env(),
        master="local[2]",
        extra={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            # A zone 14 hours ahead of UTC: a day computed in the JVM's zone
            # would move the events near midnight. It applies only when this
            # session starts the JVM, and test_event_days_ignore_session_zone
            # covers the session zone whatever the JVM's.
            "spark.driver.extraJavaOptions": "-Duser.timezone=Pacific/Kiritimati",
        },
    )
    session = start_session(conf)
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous


@pytest.fixture
def mongo_settings() -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        Settings.from_env(), mongo_db=f"batchtest_{tag}", retention_days=30
    )
    yield settings
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
    client.drop_database(settings.mongo_db)
    client.close()


@pytest.fixture
def local_archive(tmp_path: Path, mongo_settings: Settings) -> Settings:
    write_sample_archive(LocalArchiveSink(tmp_path / "archive"))
    return dataclasses.replace(mongo_settings, archive_url=str(tmp_path / "archive"))


def day(text: str) -> int:
    return micros(f"{text}T00:00:00Z") // 86_400_000_000


def test_backfill_matches_hand_counts(
    spark: SparkSession, local_archive: Settings
) -> None:
    summary = run_backfill(local_archive, day(D1), day(D2), spark)

    assert summary.rows_read == RECORDS + 4
    assert summary.offset_duplicates == 4
    assert summary.count("invalid") == 3
    assert summary.count("view_rejected") == 2
    assert summary.count("duplicate_event", "MessagePosted") == 1
    assert summary.count("duplicate_event", "LikeAdded") == 1
    assert summary.count("duplicate_event", "ViewRecorded") == 1
    assert summary.count("duplicate_post") == 1
    assert summary.count("unknown_message") == 2
    assert summary.count("accepted") == RECORDS - 11

    client: MongoClient[dict[str, Any]] = MongoClient(local_archive.mongo_url)
    try:
        assert_expected_views(client[local_archive.mongo_db])
    finally:
        client.close()


def test_backfill_rerun_is_identical(
    spark: SparkSession, local_archive: Settings
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(local_archive.mongo_url)
    db = client[local_archive.mongo_db]
    try:
        run_backfill(local_archive, day(D1), day(D2), spark)
        first = {name: documents(db, name) for name in COLLECTIONS}
        run_backfill(local_archive, day(D1), day(D2), spark)
        second = {name: documents(db, name) for name in COLLECTIONS}
        # A rerun of one day replaces that day and leaves the other alone.
        run_backfill(local_archive, day(D2), day(D2), spark)
        third = {name: documents(db, name) for name in COLLECTIONS}
    finally:
        client.close()

    for name in COLLECTIONS:
        assert second[name] == first[name], name
        assert third[name] == first[name], name


def test_event_days_ignore_session_zone(spark: SparkSession) -> None:
    rows = [
        ("MessagePosted", micros(f"{D1}T23:59:59.999999Z"), None, None),
        ("ViewRecorded", None, micros(f"{D1}T23:59:50Z"), micros(f"{D2}T00:00:30Z")),
        ("LikeAdded", None, None, micros("1969-12-31T23:59:59.999999Z")),
    ]
    frame = spark.createDataFrame(
        rows, "type string, created long, started long, occurred long"
    ).selectExpr(
        "type",
        "timestamp_micros(created) AS created_at",
        "timestamp_micros(started) AS started_at",
        "timestamp_micros(occurred) AS occurred_at",
    )
    spark.conf.set("spark.sql.session.timeZone", "Pacific/Kiritimati")
    try:
        days = [row["day"] for row in aggregates.with_event_days(frame).collect()]
        with_view_check = frame.withColumns(
            {
                "started_us": F.unix_micros("started_at"),
                "occurred_us": F.unix_micros("occurred_at"),
            }
        ).where(F.col("type") == "ViewRecorded")
        timing = with_view_check.select(
            aggregates.view_timing_ok(retention_days=1).alias("ok")
        ).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")

    assert days == [day(D1), day(D1), -1]
    # Started on D1 and reported on D2 (UTC), so one day of retention rejects
    # it. In the session zone, UTC+14, both instants fall on D2.
    assert timing[0]["ok"] is False


def test_backfill_writes_empty_days(
    spark: SparkSession, local_archive: Settings
) -> None:
    summary = run_backfill(local_archive, day("2026-02-27"), day(D1), spark)

    assert summary.documents[batch_views.BATCH_DAILY] == 3
    client: MongoClient[dict[str, Any]] = MongoClient(local_archive.mongo_url)
    try:
        daily = documents(client[local_archive.mongo_db], batch_views.BATCH_DAILY)
    finally:
        client.close()
    assert daily["2026-02-27"]["messages"] == 0
    assert daily["2026-02-27"]["sentiment"]["mean_compound"] == 0.0
    assert daily[D1] == expected_daily()[D1]


@pytest.mark.slow
def test_backfill_on_standalone_cluster(mongo_settings: Settings) -> None:
    """spark-submit the job to a standalone master and worker, reading s3a://."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"batchtest-{tag}/archive"
    settings = dataclasses.replace(
        mongo_settings, archive_url=f"s3://socialstream-archive/{prefix}"
    )
    jars = s3a_jars(default_tools_dir(os.environ))
    if not jars:
        pytest.fail("hadoop-aws jars are missing; run 'scripts/stack.py install'")
    filesystem = s3_filesystem(settings)
    write_sample_archive(S3ArchiveSink(filesystem, "socialstream-archive", prefix))
    stack = [sys.executable, str(PROJECT_ROOT / "scripts" / "stack.py")]
    subprocess.run([*stack, "spark-up"], check=True, timeout=180)
    try:
        if not spark_worker_alive():
            pytest.fail("spark-up returned but no worker is registered")
        result = spark_submit(settings, jars)
    finally:
        subprocess.run([*stack, "spark-down"], check=False, timeout=120)
        filesystem.rm(f"socialstream-archive/batchtest-{tag}", recursive=True)

    assert result.returncode == 0, result.stderr[-4000:]
    read_line = f"archived rows read: {RECORDS + 4} (4 re-archived duplicates dropped)"
    assert read_line in result.stdout, result.stdout
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
    try:
        assert_expected_views(client[settings.mongo_db])
    finally:
        client.close()


def spark_worker_alive() -> bool:
    with urllib.request.urlopen("http://127.0.0.1:8080/json/", timeout=5) as answer:
        state = orjson.loads(answer.read())
    return any(worker["state"] == "ALIVE" for worker in state["workers"])


def spark_submit(
    settings: Settings, jars: list[str]
) -> subprocess.CompletedProcess[str]:
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SOCIALSTREAM_ARCHIVE_URL": settings.archive_url,
        "SOCIALSTREAM_MONGO_DB": settings.mongo_db,
        "SOCIALSTREAM_RETENTION_DAYS": str(settings.retention_days),
    }
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--master",
        "spark://127.0.0.1:7077",
        "--driver-memory",
        "1g",
        "--executor-memory",
        "1g",
        "--total-executor-cores",
        "2",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--jars",
        ",".join(jars),
        str(PROJECT_ROOT / "batch_backfill" / "job.py"),
        "--from",
        D1,
        "--to",
        D2,
    ]
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
