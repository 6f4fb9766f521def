"""Fixtures that run real workers (``python -m app.cli worker``) on the local stack.

Each deployment gets its own topic prefix, Faust application id, MongoDB
database and state folder, so a test run never reads another run's events,
and its web server listens on a free port from 6100 to 6199.

``running_worker``
    One worker for the whole session, started on first use. Tests that share
    it should use their own user names or message ids, because its feed and
    tables collect every test's events::

        async def test_feed(running_worker: Worker) -> None:
            url = running_worker.url               # http://127.0.0.1:61xx
            prefix = running_worker.settings.topic_prefix

``worker_factory``
    Starts more workers; each is stopped and its deployment deleted at the
    end of the session. ``worker_factory()`` starts a worker of a new
    deployment, and ``worker_factory(join=first)`` starts another worker of
    the deployment of ``first`` (same topics, group and database, its own
    port and state folder). ``env`` overrides environment variables, such as
    ``{"SOCIALSTREAM_TOPIC_PARTITIONS": "2"}``.

A worker is ready when ``GET /health`` returns 200 and Faust's ``/router/``
shows table partitions assigned in the worker's consumer group. When a
worker does not get ready within ``timeout_s`` (90 s by default) or exits,
the fixture fails the test with the tail of the worker's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import pytest

from app.deployment import delete_topics, drop_database
from app.settings import PROJECT_ROOT, Settings

PORTS = range(6100, 6200)
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 60
PORT_ATTEMPTS = 3
# Start-up and timer lines of Faust that would fill a log tail.
NOISE = re.compile(r"Starting\.\.\.|opening partition|woke up too late|Stopping\.\.\.")


@dataclass
class Worker:
    """A worker process started by the fixtures, with the settings it runs with."""

    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return self.settings.api_url

    @property
    def pid(self) -> int:
        return self.process.pid

    def topic(self, name: str) -> str:
        """Return the full name of event topic ``name``, such as ``likes``."""
        return self.settings.topic(name)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        useful = [line for line in text.splitlines() if not NOISE.search(line)]
        return "\n".join(useful[-lines:])

    def stop(self) -> None:
        """Send SIGTERM, then SIGKILL after STOP_TIMEOUT_S; only to this process."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)


class WorkerFactory(Protocol):
    def __call__(
        self,
        *,
        join: Worker | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = READY_TIMEOUT_S,
    ) -> Worker: ...


def settings_env(settings: Settings) -> dict[str, str]:
    """Return every setting as its environment variable, secrets included."""
    return {
        spec.metadata["env"]: str(getattr(settings, spec.name))
        for spec in fields(Settings)
    }


def free_port(in_use: set[int]) -> int:
    """Return a port from PORTS that nothing listens on; start at a random one."""
    offset = uuid.uuid4().int % len(PORTS)
    for index in range(len(PORTS)):
        port = PORTS[(offset + index) % len(PORTS)]
        if port in in_use:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port from {PORTS.start} to {PORTS.stop - 1}")


def get_json(url: str) -> tuple[int, Any]:
    try:
        # The URL is always the worker's http:// address.
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def partitions_assigned(worker: Worker) -> bool:
    """Return whether Faust's router lists table partitions for some worker."""
    status, body = get_json(f"{worker.url}/router/")
    if status != 200 or not isinstance(body, dict):
        return False
    return any(
        partitions
        for tables in body.values() if isinstance(tables, dict)
        for partitions in tables.values()
    )


def wait_ready(worker: Worker, timeout_s: float) -> str | None:
    """Wait until the worker is ready; return why it is not, or None."""
    deadline = time.monotonic() + timeout_s
    healthy = False
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            return f"exited with code {worker.process.returncode}"
        if not healthy:
            healthy = get_json(f"{worker.url}/health")[0] == 200
        if healthy and partitions_assigned(worker):
            return None
        time.sleep(0.5)
    state = "/health returns 200" if healthy else "/health does not return 200"
    return f"not ready within {timeout_s:.0f} s ({state})"


def run_topics_command(env: Mapping[str, str], log_path: Path) -> None:
    with log_path.open("ab") as log:
        subprocess.run(
            [sys.executable, "-m", "app.cli", "topics"],
            cwd=PROJECT_ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            check=True, timeout=120,
        )


def delete_deployment(settings: Settings) -> None:
    asyncio.run(delete_topics(settings))
    drop_database(settings, timeout_ms=5000)


def deployment_env(
    base: Settings, join: Worker | None, env: Mapping[str, str] | None
) -> dict[str, str]:
    """Return the environment of a new deployment's worker, or one joining ``join``."""
    worker_env = {**os.environ, **settings_env(base)}
    if join is None:
        name = f"t{uuid.uuid4().hex[:10]}"
        worker_env.update({
            "SOCIALSTREAM_TOPIC_PREFIX": f"{name}-",
            "SOCIALSTREAM_APP_ID": name,
            "SOCIALSTREAM_MONGO_DB": name,
        })
    else:
        worker_env.update(settings_env(join.settings))
    worker_env.update(env or {})
    return worker_env


def launch(worker_env: Mapping[str, str], log_path: Path) -> Worker:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=PROJECT_ROOT, env=dict(worker_env), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return Worker(Settings.from_env(worker_env), process, log_path)


def lost_port_race(worker: Worker) -> bool:
    """Return whether the worker exited because another process took its port."""
    return worker.process.poll() is not None and "address already in use" in (
        worker.log_tail()
    )


@pytest.fixture(scope="session")
def worker_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerFactory]:
    """Start workers on demand; stop them and delete their deployments at the end."""
    base = Settings.from_env()
    if not base.jwt_secret:
        pytest.skip("SOCIALSTREAM_JWT_SECRET is not set and .state/stack.env has none")
    workers: list[Worker] = []
    deployments: dict[str, Settings] = {}

    def start(
        *,
        join: Worker | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = READY_TIMEOUT_S,
    ) -> Worker:
        state_dir = tmp_path_factory.mktemp("worker")
        log_path = state_dir / "worker.log"
        worker_env = deployment_env(base, join, env)
        worker_env["SOCIALSTREAM_STATE_DIR"] = str(state_dir)
        settings = Settings.from_env(worker_env)
        deployments.setdefault(settings.app_id, settings)
        if join is None:
            run_topics_command(worker_env, log_path)

        # Another process may bind the free port first, so retry on a new one.
        for _ in range(PORT_ATTEMPTS):
            in_use = {worker.settings.api_port for worker in workers}
            worker_env["SOCIALSTREAM_API_PORT"] = str(free_port(in_use))
            worker = launch(worker_env, log_path)
            workers.append(worker)
            failure = wait_ready(worker, timeout_s)
            if failure is None:
                return worker
            if not lost_port_race(worker):
                break
        worker.stop()
        pytest.fail(
            f"worker pid {worker.pid} at {worker.url} {failure}; last lines of "
            f"{log_path}:\n{worker.log_tail()}",
            pytrace=False,
        )

    yield start

    for worker in reversed(workers):
        worker.stop()
    for settings in deployments.values():
        delete_deployment(settings)


@pytest.fixture(scope="session")
def running_worker(worker_factory: WorkerFactory) -> Worker:
    """Return one ready worker of a fresh deployment, shared by the session."""
    return worker_factory()
