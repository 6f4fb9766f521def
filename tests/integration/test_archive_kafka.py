"""The archiver against the real Kafka broker and MinIO."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.events import make_event, new_message_id
from app.settings import Settings
from app.storage import s3_filesystem
from batch_backfill.archiver import (
    LOGICAL_TOPICS,
    archive_until_caught_up,
    archiver_group_id,
    run_archiver,
)
from batch_backfill.reader import archive_dataset
from batch_backfill.schema import INVALID_TYPE

pytestmark = pytest.mark.integration

PARTITIONS = 3
FILE_NAME = re.compile(
    r"^(?P<topic>.+)-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


@pytest.fixture
def settings() -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    base = Settings.from_env()
    settings = dataclasses.replace(
        base,
        topic_prefix=f"batchtest-{tag}-",
        app_id=f"batchtest-{tag}",
        archive_url=f"s3://socialstream-archive/batchtest-{tag}/archive",
        archive_flush_rows=7,
        archive_flush_seconds=60.0,
    )
    yield settings
    filesystem = s3_filesystem(settings)
    root = f"socialstream-archive/batchtest-{tag}"
    if filesystem.exists(root):
        filesystem.rm(root, recursive=True)


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[list[str]]:
    names = [settings.topic(name) for name in LOGICAL_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
        yield names
        await admin.delete_topics(names)
    finally:
        await admin.close()


def valid_records() -> list[tuple[str, bytes, bytes]]:
    """Return (logical topic, key, value) of valid events of every type."""
    records = []
    for index in range(10):
        message_id = new_message_id()
        posted = make_event(
            "MessagePosted",
            message_id=message_id,
            user=f"user{index}",
            body=f"message number {index}",
        )
        records.append(("messages", message_id.encode(), posted.to_json()))
        liked = make_event("LikeAdded", message_id=message_id, user="liker")
        records.append(("likes", message_id.encode(), liked.to_json()))
        if index % 2:
            unliked = make_event("LikeRemoved", message_id=message_id, user="liker")
            records.append(("likes", message_id.encode(), unliked.to_json()))
        viewed = make_event(
            "ViewRecorded",
            message_id=message_id,
            user="viewer",
            started_at=posted.occurred_at,
            duration_ms=1000 + index,
        )
        records.append(("views", message_id.encode(), viewed.to_json()))
    return records


def invalid_records() -> list[tuple[str, bytes | None, bytes | None]]:
    message_id = new_message_id()
    wrong_topic = make_event("LikeAdded", message_id=message_id, user="liker")
    view = make_event(
        "ViewRecorded",
        message_id=message_id,
        user="viewer",
        started_at=wrong_topic.occurred_at,
        duration_ms=5,
    ).to_dict()
    view["duration_ms"] = 0
    return [
        ("messages", b"not-a-uuid", b"{not json"),
        ("messages", message_id.encode(), wrong_topic.to_json()),
        ("likes", message_id.encode(), None),
        ("views", message_id.encode(), orjson.dumps(view)),
    ]


async def produce(
    settings: Settings, records: Sequence[tuple[str, bytes | None, bytes | None]]
) -> Counter[tuple[str, int]]:
    """Send the records round-robin over the partitions; return counts per partition."""
    counts: Counter[tuple[str, int]] = Counter()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for index, (logical, key, value) in enumerate(records):
            topic = settings.topic(logical)
            partition = index % PARTITIONS
            await producer.send_and_wait(topic, value, key=key, partition=partition)
            counts[(topic, partition)] += 1
    finally:
        await producer.stop()
    return counts


async def committed_offsets(
    settings: Settings, names: list[str]
) -> dict[TopicPartition, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=archiver_group_id(settings),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(name, number)
            for name in names
            for number in range(PARTITIONS)
        ]
        return {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def test_archiver_writes_every_record(
    settings: Settings, topics: list[str]
) -> None:
    valid = valid_records()
    invalid = invalid_records()
    counts = await produce(settings, [*valid, *invalid])
    total = len(valid) + len(invalid)

    summary = await archive_until_caught_up(settings, timeout=120)

    assert summary.rows == total
    assert summary.invalid_rows == len(invalid)
    table = archive_dataset(settings).to_table()
    assert table.num_rows == total
    offsets: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in zip(
        table.column("topic").to_pylist(),
        table.column("partition").to_pylist(),
        table.column("offset").to_pylist(),
        strict=True,
    ):
        offsets[(topic, partition)].append(offset)
    for key, count in counts.items():
        assert sorted(offsets[key]) == list(range(count)), key
    assert set(offsets) == set(counts)

    types = Counter(table.column("type").to_pylist())
    assert types[INVALID_TYPE] == len(invalid)
    assert types["MessagePosted"] == 10
    assert types["LikeAdded"] == 10
    assert types["LikeRemoved"] == 5
    assert types["ViewRecorded"] == 10

    expected_ids = {orjson.loads(value)["event_id"] for _, _, value in valid}
    assert set(table.column("event_id").drop_null().to_pylist()) == expected_ids

    assert await committed_offsets(settings, topics) == {
        TopicPartition(topic, partition): counts.get((topic, partition)) or None
        for topic in topics
        for partition in range(PARTITIONS)
    }


async def test_archiver_files_are_named_and_typed(
    settings: Settings, topics: list[str]
) -> None:
    await produce(settings, [*valid_records(), *invalid_records()])
    summary = await archive_until_caught_up(settings, timeout=120)

    assert summary.files
    filesystem = s3_filesystem(settings)
    for written in summary.files:
        path = written.path.removeprefix("s3://")
        match = FILE_NAME.match(path.rsplit("/", 1)[1])
        assert match is not None, path
        assert f"/type={written.event_type}/date={written.date}/" in path
        assert int(match["first"]) == written.first_offset
        assert int(match["last"]) == written.last_offset
        assert written.rows <= settings.archive_flush_rows

        with filesystem.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
            columns = {
                parquet.schema.column(i).name: parquet.schema.column(i)
                for i in range(len(parquet.schema))
            }
            rows = parquet.read()
        for name in ("kafka_timestamp", "occurred_at", "created_at", "started_at"):
            assert schema.field(name).type == pa.timestamp("us", tz="UTC"), name
            assert columns[name].physical_type == "INT64", name
            logical = str(columns[name].logical_type)
            assert "isAdjustedToUTC=true" in logical, logical
            assert "microseconds" in logical, logical
        assert rows.num_rows == written.rows
        offsets = rows.column("offset").to_pylist()
        assert min(offsets) == written.first_offset
        assert max(offsets) == written.last_offset

    invalid = archive_dataset(settings).to_table(
        filter=pa.compute.field("type") == INVALID_TYPE
    )
    errors = invalid.column("error").to_pylist()
    assert all(errors), errors
    raw = invalid.column("raw").to_pylist()
    assert b"{not json" in raw
    assert None in raw  # the tombstone


async def test_archiver_rerun_archives_nothing(
    settings: Settings, topics: list[str]
) -> None:
    await produce(settings, valid_records()[:6])
    first = await archive_until_caught_up(settings, timeout=120)
    second = await archive_until_caught_up(settings, timeout=120)

    assert first.rows == 6
    assert second.rows == 0
    assert archive_dataset(settings).count_rows() == 6


async def test_run_archiver_flushes_by_age(
    settings: Settings, topics: list[str]
) -> None:
    aged = dataclasses.replace(
        settings, archive_flush_rows=10_000, archive_flush_seconds=0.5
    )
    records = valid_records()[:5]
    await produce(aged, records)
    stop = asyncio.Event()
    task = asyncio.create_task(run_archiver(aged, stop))
    try:
        for _ in range(120):
            await asyncio.sleep(0.5)
            offsets = await committed_offsets(aged, topics)
            if sum(offset or 0 for offset in offsets.values()) == len(records):
                break
        else:
            pytest.fail(f"archiver committed only {offsets} within 60 s")
        assert archive_dataset(aged).count_rows() == len(records)
    finally:
        stop.set()
        summary = await asyncio.wait_for(task, timeout=30)
    assert summary.rows == len(records)
