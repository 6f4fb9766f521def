"""A small run of the main job, from the simulator to the report files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from app.cli import stop_background_worker
from app.settings import PROJECT_ROOT, Settings

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
