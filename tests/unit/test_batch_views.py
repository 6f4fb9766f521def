"""Batch-view documents, Spark settings and replay ordering, without services."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from app.events import decode_event, make_event
from app.settings import Settings
from batch_backfill import batch_views
from batch_backfill.job import parse_conf
from batch_backfill.replay import ReplayError, event_of_row, replay_target, topic_rows
from batch_backfill.schema import FILE_SCHEMA
from batch_backfill.spark import (
    default_tools_dir,
    launched_by_spark_submit,
    s3a_jars,
    s3a_options,
    session_conf,
    to_spark_path,
)

MESSAGE_ID = "00000000-0000-4000-8000-000000000001"


def settings(**changes: object) -> Settings:
    base = Settings(
        s3_access_key="key", s3_secret_key="secret", s3_endpoint="http://127.0.0.1:9000"
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_daily_document_of_empty_day() -> None:
    document = batch_views.daily_document(20_513, None)

    assert document == {
        "_id": "2026-03-01",
        "day": "2026-03-01",
        "messages": 0,
        "likes": 0,
        "unlikes": 0,
        "view_ms": 0,
        "views": 0,
        "sentiment": {
            "count": 0,
            "compound_sum": 0,
            "mean_compound": 0.0,
            "positive": 0,
            "neutral": 0,
            "negative": 0,
        },
    }


def test_daily_document_mean_compound() -> None:
    document = batch_views.daily_document(
        20_513, {"s_count": 3, "s_sum": 10_001, "positive": 2, "negative": 1}
    )

    assert document["sentiment"]["mean_compound"] == round(10_001 / 3 / 10_000, 4)
    assert document["sentiment"]["positive"] == 2
    assert document["sentiment"]["neutral"] == 0


def test_keyed_documents_have_stable_ids() -> None:
    user_day = batch_views.user_daily_document(
        {
            "user": "a.b",
            "day": 20_513,
            "messages": 1,
            "likes_given": 2,
            "likes_received": 3,
            "view_ms": 4,
            "views": 5,
        }
    )
    message_day = batch_views.message_daily_document(
        {"message_id": MESSAGE_ID, "day": 20_513, "likes": 2}
    )
    total = batch_views.message_total_document(
        {
            "message_id": MESSAGE_ID,
            "author": None,
            "created_day": None,
            "like_count": 0,
            "view_ms": 7,
            "views": 1,
        }
    )

    assert user_day["_id"] == "a.b|2026-03-01"
    assert message_day["_id"] == f"{MESSAGE_ID}|2026-03-01"
    assert total["_id"] == MESSAGE_ID
    assert total["created_day"] is None
    assert batch_views.user_total_document({"user": "a", "messages": 3}) == {
        "_id": "a",
        "user": "a",
        "messages": 3,
    }


def test_chunked_splits_documents() -> None:
    chunks = list(batch_views.chunked(({"n": i} for i in range(5)), 2))

    assert [len(chunk) for chunk in chunks] == [2, 2, 1]


def test_to_spark_path_maps_s3_to_s3a(tmp_path: Path) -> None:
    assert to_spark_path("s3://bucket/events") == "s3a://bucket/events"
    assert to_spark_path("s3a://bucket/events") == "s3a://bucket/events"
    assert to_spark_path("s3://bucket/events", "s3") == "s3://bucket/events"
    assert to_spark_path("s3://bucket", "s3a") == "s3a://bucket"
    assert to_spark_path(str(tmp_path / "x")) == str(tmp_path / "x")
    assert to_spark_path(f"file://{tmp_path}") == str(tmp_path)


def test_s3a_options_for_minio() -> None:
    options = s3a_options(settings())

    assert options["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert options["fs.s3a.path.style.access"] == "true"
    assert options["fs.s3a.connection.ssl.enabled"] == "false"
    assert options["fs.s3a.access.key"] == "key"
    assert options["fs.s3a.secret.key"] == "secret"
    assert options["fs.s3a.aws.credentials.provider"].endswith(
        "SimpleAWSCredentialsProvider"
    )


def test_s3a_options_for_aws_default_chain() -> None:
    options = s3a_options(settings(s3_endpoint="", s3_access_key="", s3_secret_key=""))

    assert "fs.s3a.endpoint" not in options
    assert "fs.s3a.access.key" not in options
    assert "fs.s3a.aws.credentials.provider" not in options
    assert options["fs.s3a.endpoint.region"] == "us-east-1"


def test_session_conf_leaves_master_to_spark_submit() -> None:
    conf = session_conf(settings(archive_url="s3://b/p"), master=None)

    assert "spark.master" not in conf
    assert "spark.jars" not in conf
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.driver.memory"] == "1g"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"


def test_session_conf_sets_jars_and_extra(tmp_path: Path) -> None:
    conf = session_conf(
        settings(archive_url=str(tmp_path)),
        master="local[2]",
        jars=["a.jar", "b.jar"],
        app_name="check",
        extra={"spark.sql.shuffle.partitions": "2"},
    )

    assert conf["spark.master"] == "local[2]"
    assert conf["spark.jars"] == "a.jar,b.jar"
    assert conf["spark.app.name"] == "check"
    assert conf["spark.sql.shuffle.partitions"] == "2"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_s3a_jars_found_in_tools_dir(tmp_path: Path) -> None:
    libs = tmp_path / "spark-s3a-3.4.1" / "libs"
    libs.mkdir(parents=True)
    (libs / "hadoop-aws-3.4.1.jar").touch()

    assert default_tools_dir({"SOCIALSTREAM_TOOLS_DIR": str(tmp_path)}) == tmp_path
    assert s3a_jars(tmp_path) == [str(libs / "hadoop-aws-3.4.1.jar")]
    assert s3a_jars(tmp_path / "missing") == []
    assert default_tools_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/socialstream/tools")


def test_launched_by_spark_submit() -> None:
    assert launched_by_spark_submit({"PYSPARK_GATEWAY_PORT": "4000"})
    assert not launched_by_spark_submit({})


def test_parse_conf_pairs() -> None:
    assert parse_conf(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_conf(["novalue"])


def test_replay_target_needs_new_prefix() -> None:
    source = settings(topic_prefix="old-")

    assert replay_target(source, "new-").topic("likes") == "new-likes"
    with pytest.raises(ReplayError, match="prefix of the archived deployment"):
        replay_target(source, "old-")


def test_topic_rows_sorted_once_per_offset() -> None:
    rows = []
    for partition, offset in [(1, 0), (0, 1), (0, 0), (0, 1), (1, 1)]:
        event = make_event("LikeAdded", message_id=MESSAGE_ID, user="u")
        rows.append(
            {
                "topic": "p-likes",
                "partition": partition,
                "offset": offset,
                "kafka_timestamp": 1_000_000,
                "key": b"k",
                "event_id": event.event_id,
                "occurred_at": event.occurred_at,
                "message_id": MESSAGE_ID,
                "user": "u",
                "body": None,
                "created_at": None,
                "started_at": None,
                "duration_ms": None,
                "raw": None,
                "error": None,
            }
        )
    table = pa.Table.from_pylist(rows, schema=FILE_SCHEMA).append_column(
        "type", pa.array(["LikeAdded"] * len(rows))
    )

    ordered = list(topic_rows(table))

    assert [(row["partition"], row["offset"]) for row in ordered] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert ordered[0]["kafka_timestamp"] == 1_000_000


def test_event_of_row_round_trips() -> None:
    view = make_event(
        "ViewRecorded",
        message_id=MESSAGE_ID,
        user="u",
        started_at=1_700_000_000_123_456,
        duration_ms=42,
    )
    row = {
        "event_id": view.event_id,
        "type": "ViewRecorded",
        "occurred_at": view.occurred_at,
        "message_id": MESSAGE_ID,
        "user": "u",
        "body": None,
        "created_at": None,
        "started_at": view.started_at,
        "duration_ms": 42,
    }

    value = event_of_row(row).to_json()

    assert decode_event(value, expected_topic="views") == view
    assert orjson.loads(value)["started_at"] == "2023-11-14T22:13:20.123456Z"
