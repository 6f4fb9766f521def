"""Command line of the worker: ``python -m app.cli COMMAND``.

Commands:
  worker   run one Faust worker (agents, tables and the HTTP API) in the foreground
  up       start the worker in the background and wait until it is healthy
  topics   create the event topics, for producers that write before a worker runs
  token    print a bearer token for a user
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from aiokafka.errors import KafkaError

from app.lag import worker_topics
from app.logs import configure_logging
from app.settings import PROJECT_ROOT, Settings, SettingsError

logger = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 120.0


def run_worker(settings: Settings) -> None:
    import faust

    from app.pipeline import create_pipeline

    pipeline = create_pipeline(settings)
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level,
        override_logging=False,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()


async def create_event_topics(settings: Settings) -> list[str]:
    """Create the topics the worker reads, and the dead-letter topic, if missing.

    Faust would create the rollup topics at start-up, but a worker whose
    group was assigned before they existed skipped them until its next
    metadata refresh, 5 minutes later by default, so they are created here
    first. Faust creates the table changelog topics itself.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = [*worker_topics(settings), settings.topic("dead-letters")]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.topic_partitions, 1)
            for name in names
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


def health_ok(url: str) -> bool:
    try:
        # The worker URL comes from settings and is always http.
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_background_worker(settings: Settings, service: str = "worker") -> int:
    """Start ``app.cli worker`` detached, with its pid file; return its pid."""
    pid_dir = settings.state_dir / "pids"
    pid_file = pid_dir / f"{service}.pid"
    app_id_file = pid_dir / f"{service}.app_id"
    existing = _running_pid(pid_file)
    if existing is not None and health_ok(settings.api_url):
        running_id = _read_text(app_id_file) or "unknown"
        print(
            f"{service} already running (pid {existing}) at {settings.api_url}, "
            f"application id {running_id}"
        )
        if running_id != settings.app_id:
            print(
                f"note: that is not this command's application id "
                f"{settings.app_id}; run make down first to start it instead"
            )
        return existing
    log_path = settings.log_dir / f"{service}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    app_id_file.write_text(settings.app_id)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if health_ok(settings.api_url):
            print(f"{service} running (pid {process.pid}) at {settings.api_url}")
            return process.pid
        if process.poll() is not None:
            raise SystemExit(
                f"error: {service} exited with code {process.returncode} during "
                f"start-up; read {log_path}"
            )
        time.sleep(0.5)
    raise SystemExit(
        f"error: {service} did not respond on {settings.api_url}/health within "
        f"{WORKER_START_TIMEOUT_S:.0f} s; read {log_path}"
    )


def stop_background_worker(settings: Settings, service: str = "worker") -> bool:
    """Stop the worker started by :func:`start_background_worker`, if any.

    Sends SIGTERM to its process group, then SIGKILL after 30 s; returns
    whether a worker was running.
    """
    pid_file = settings.state_dir / "pids" / f"{service}.pid"
    app_id_file = pid_file.parent / f"{service}.app_id"
    pid = _running_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        app_id_file.unlink(missing_ok=True)
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _running_pid(pid_file) is not None:
        time.sleep(0.2)
    if _running_pid(pid_file) is not None:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    app_id_file.unlink(missing_ok=True)
    return True


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="socialstream", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run one worker in the foreground")
    commands.add_parser("up", help="start the worker in the background")
    commands.add_parser("topics", help="create the event topics")
    token = commands.add_parser("token", help="print a bearer token for USER")
    token.add_argument("user")
    token.add_argument(
        "--ttl", type=int, default=86_400, help="lifetime in seconds (default 86400)"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)

    if args.command == "worker":
        try:
            asyncio.run(create_event_topics(settings))
        except (KafkaError, OSError) as error:
            # Faust creates missing topics itself once Kafka is reachable.
            logger.warning(
                "creating the topics at %s failed, starting anyway: %r",
                settings.kafka_bootstrap,
                error,
            )
        run_worker(settings)
    elif args.command == "up":
        asyncio.run(create_event_topics(settings))
        start_background_worker(settings)
    elif args.command == "topics":
        created = asyncio.run(create_event_topics(settings))
        print("created: " + (", ".join(created) if created else "none (all exist)"))
    elif args.command == "token":
        from app.auth import mint_token

        if not settings.jwt_secret:
            print(
                "error: SOCIALSTREAM_JWT_SECRET is not set; run 'make stack-up' "
                "to generate one",
                file=sys.stderr,
            )
            return 2
        try:
            print(mint_token(settings, args.user, ttl_s=args.ttl))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
