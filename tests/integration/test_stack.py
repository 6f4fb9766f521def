"""The local stack over real connections.

The lifecycle tests start a second, private stack on other ports and with
its own state folder, so they never touch the stack the rest of the suite
uses.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from app.settings import PROJECT_ROOT, Settings
from app.storage import s3_filesystem

pytestmark = pytest.mark.integration

STACK = [sys.executable, str(PROJECT_ROOT / "scripts" / "stack.py")]


def free_port_base() -> int:
    """Return a port p such that p and p + 1 are both free."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65000 and not _listening(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports found")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("stack-state")
    kafka, mongo, s3 = free_port_base(), free_port_base(), free_port_base()
    env = {
        **os.environ,
        "SOCIALSTREAM_STATE_DIR": str(state),
        "SOCIALSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "SOCIALSTREAM_MONGO_URL": f"mongodb://127.0.0.1:{mongo}/",
        "SOCIALSTREAM_S3_ENDPOINT": f"http://127.0.0.1:{s3}",
        "SOCIALSTREAM_API_PORT": str(free_port_base()),
    }
    for key in (
        "SOCIALSTREAM_S3_ACCESS_KEY",
        "SOCIALSTREAM_S3_SECRET_KEY",
        "SOCIALSTREAM_JWT_SECRET",
    ):
        env.pop(key, None)
    env["PORTS"] = f"{kafka},{kafka + 1},{mongo},{s3},{s3 + 1}"
    yield env
    subprocess.run([*STACK, "down-services"], env=env, check=False)


def run_stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STACK, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def test_stack_up_twice_is_noop(private_stack: dict[str, str]) -> None:
    first = run_stack(private_stack, "up")
    assert first.returncode == 0, first.stderr + first.stdout
    pids = sorted(Path(private_stack["SOCIALSTREAM_STATE_DIR"], "pids").glob("*.pid"))
    before = {path.name: path.read_text() for path in pids}

    second = run_stack(private_stack, "up")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already running") == 3
    after = {path.name: path.read_text() for path in pids}
    assert after == before


def test_stack_status_reports_healthy(private_stack: dict[str, str]) -> None:
    status = run_stack(private_stack, "status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == 3


def test_port_in_use_is_named(private_stack: dict[str, str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = {
            **private_stack,
            "SOCIALSTREAM_STATE_DIR": private_stack["SOCIALSTREAM_STATE_DIR"] + "-2",
            "SOCIALSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        }
        result = run_stack(env, "up")
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "SOCIALSTREAM_KAFKA_BOOTSTRAP" in result.stderr
    assert "Traceback" not in result.stderr


def test_stack_down_leaves_no_port(private_stack: dict[str, str]) -> None:
    result = run_stack(private_stack, "down-services")
    assert result.returncode == 0, result.stderr
    ports = [int(port) for port in private_stack["PORTS"].split(",")]
    listening = [port for port in ports if _listening(port)]
    assert listening == []
    again = run_stack(private_stack, "down-services")
    assert again.returncode == 0


# ---------------------------------------------------------------- the shared stack


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


async def test_kafka_produce_consume(settings: Settings) -> None:
    topic = f"stacktest-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait(topic, b"hello", key=b"k")
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert record.value == b"hello"
    assert record.key == b"k"


async def test_mongo_insert_find(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    collection = client[f"stacktest_{uuid.uuid4().hex[:8]}"]["things"]
    try:
        await collection.insert_one({"_id": "a", "n": 1})
        found = await collection.find_one({"_id": "a"})
        assert found == {"_id": "a", "n": 1}
    finally:
        await client.drop_database(collection.database.name)
        await client.close()


def test_s3_write_read(settings: Settings) -> None:
    fs = s3_filesystem(settings)
    path = f"socialstream-archive/stacktest-{uuid.uuid4().hex[:8]}/object.bin"
    fs.pipe(path, b"\x00\x01payload")
    try:
        assert fs.cat(path) == b"\x00\x01payload"
    finally:
        fs.rm(path)


SPARK_ROUNDTRIP = """
import sys
from app.settings import Settings
from batch_backfill.spark import build_session

prefix = sys.argv[1]
spark = build_session(Settings.from_env(), app_name="stack-test", master="local[1]")
try:
    frame = spark.createDataFrame([(1, "a"), (2, "b")], ["n", "s"])
    frame.write.mode("overwrite").parquet(f"{prefix}/table")
    rows = sorted(spark.read.parquet(f"{prefix}/table").collect())
finally:
    spark.stop()
print([(row.n, row.s) for row in rows])
"""


@pytest.mark.spark
def test_spark_parquet_roundtrip_on_s3a() -> None:
    # A process of its own: a JVM that an earlier test started without the
    # hadoop-aws jars cannot load the s3a file system later.
    prefix = f"s3a://socialstream-archive/stacktest-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-c", SPARK_ROUNDTRIP, prefix],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[(1, 'a'), (2, 'b')]"
