"""Archive, backfill, reconcile and replay: the batch layer's command line.

Usage: python -m batch_backfill.cli COMMAND [OPTIONS]

Commands:
  archive    archive the event topics to Parquet (until stopped, or until caught up)
  backfill   recompute the batch views of a day range with Spark
  reconcile  compare the batch views with the live tables
  replay     re-publish the archived events into the topics of a new prefix
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.events import InvalidEvent, parse_day
from app.logs import configure_logging
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from batch_backfill.archiver import ArchiveSummary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    commands = {
        "archive": command_archive,
        "backfill": command_backfill,
        "reconcile": command_reconcile,
        "replay": command_replay,
    }
    return commands[args.command](settings, args)


def build_parser() -> argparse.ArgumentParser:
    from batch_backfill.job import add_backfill_arguments

    parser = argparse.ArgumentParser(
        prog="python -m batch_backfill.cli", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    archive = commands.add_parser("archive", help="archive the event topics")
    archive.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once every partition is archived and committed",
    )
    archive.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds --until-caught-up may take before failing (default 600)",
    )

    backfill = commands.add_parser("backfill", help="recompute the batch views")
    add_backfill_arguments(backfill)

    reconcile = commands.add_parser("reconcile", help="compare batch and live views")
    reconcile.add_argument(
        "--from",
        dest="from_date",
        required=True,
        metavar="YYYY-MM-DD",
        help="first UTC day to compare",
    )
    reconcile.add_argument(
        "--to",
        dest="to_date",
        required=True,
        metavar="YYYY-MM-DD",
        help="last UTC day to compare (inclusive)",
    )
    reconcile.add_argument(
        "--api-url", help="base URL of a worker (default: from SOCIALSTREAM_API_*)"
    )

    replay = commands.add_parser("replay", help="replay the archive into new topics")
    replay.add_argument(
        "--to-prefix",
        required=True,
        help="topic prefix of the new deployment (its SOCIALSTREAM_TOPIC_PREFIX)",
    )
    return parser


def command_archive(settings: Settings, args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from batch_backfill.archiver import archive_until_caught_up

    try:
        if args.until_caught_up:
            summary = asyncio.run(archive_until_caught_up(settings, args.timeout))
        else:
            summary = asyncio.run(_archive_until_signal(settings))
    except KafkaError as error:
        print(
            f"error: Kafka at {settings.kafka_bootstrap} failed: {error!r}",
            file=sys.stderr,
        )
        return 1
    except (TimeoutError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"archived {summary.rows} records ({summary.invalid_rows} invalid) "
        f"in {len(summary.files)} files under {settings.archive_url}"
    )
    return 0


async def _archive_until_signal(settings: Settings) -> ArchiveSummary:
    from batch_backfill.archiver import run_archiver

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    return await run_archiver(settings, stop)


def command_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from batch_backfill.job import run_backfill_command

    return run_backfill_command(settings, args)


def command_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from batch_backfill.reconcile import LiveReadError, format_differences, reconcile

    try:
        from_day = parse_day(args.from_date, "--from")
        to_day = parse_day(args.to_date, "--to")
    except InvalidEvent as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if to_day < from_day:
        print("error: --to must not be before --from", file=sys.stderr)
        return 2
    api_url = args.api_url or settings.api_url
    try:
        differences = reconcile(settings, from_day, to_day, api_url)
    except LiveReadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not differences:
        print(f"no differences between the batch views and {api_url}")
        return 0
    print(format_differences(differences))
    print(f"{len(differences)} differences")
    return 1


def command_replay(settings: Settings, args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from batch_backfill.reader import ArchiveNotFound
    from batch_backfill.replay import ReplayError, replay_archive

    try:
        summary = asyncio.run(replay_archive(settings, args.to_prefix))
    except (ReplayError, ArchiveNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KafkaError as error:
        print(
            f"error: Kafka at {settings.kafka_bootstrap} failed: {error!r}",
            file=sys.stderr,
        )
        return 1
    for topic, count in summary.sent.items():
        print(f"{topic}: {count} events")
    print(
        "start the new deployment with SOCIALSTREAM_TOPIC_PREFIX="
        f"{args.to_prefix} and a new SOCIALSTREAM_APP_ID"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
