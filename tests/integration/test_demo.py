"""A small run of the main job, from the simulator to the report files."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from app.cli import stop_background_worker
from app.demo import previous_deployment, remove_deployment
from app.deployment import owns_topic
from app.settings import PROJECT_ROOT, Settings
from app.storage import s3_filesystem

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_small_run(tmp_path: Path) -> None:
    base = Settings.from_env()
    settings = replace(base, state_dir=tmp_path, api_port=free_port())
    env = {**os.environ}
    for spec in fields(Settings):
        env[spec.metadata["env"]] = str(getattr(settings, spec.name))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.demo",
                "--users",
                "8",
                "--days",
                "2",
                "--messages-per-day",
                "20",
                "--seed",
                "3",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        stop_background_worker(settings)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["events_sent"] > 100
    assert report["events_processed"] == report["events_sent"]
    assert report["events_archived"] == report["events_sent"]
    assert report["differences"] == 0
    assert report["truth_differences"] == 0
    assert report["truth_values_checked"] > 100
    assert report["lag_ms"]["p99"] >= report["lag_ms"]["p50"] > 0
    assert report["throughput_events_per_s"] > 0
    assert len(report["daily"]) == 2
    assert sum(row["messages"] for row in report["daily"]) > 0

    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 4
    assert "No differences" in page
    assert "curl -s" in result.stdout

    # The next run removes this deployment; here it is removed directly.
    deployment = previous_deployment(settings)
    assert deployment is not None and deployment.app_id.startswith("demo-")
    remove_deployment(deployment)
    assert asyncio.run(deployment_topics(deployment)) == []
    client: MongoClient[dict[str, Any]] = MongoClient(
        deployment.mongo_url, serverSelectionTimeoutMS=10_000
    )
    try:
        assert deployment.mongo_db not in client.list_database_names()
    finally:
        client.close()
    if deployment.archive_is_s3:
        archive = deployment.archive_url.removeprefix("s3://")
        assert not s3_filesystem(deployment).exists(archive)


async def deployment_topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return [
            name for name in await admin.list_topics() if owns_topic(settings, name)
        ]
    finally:
        await admin.close()
