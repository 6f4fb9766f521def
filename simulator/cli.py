"""Command line of the traffic simulator: ``run``, ``truth`` and ``verify``.

    python -m simulator.cli run --users 50 --days 3 --messages-per-day 200 \\
        --seed 7 --via kafka --duration-s 30
    python -m simulator.cli verify --truth .state/sim/truth.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from app.settings import Settings, SettingsError
from simulator.config import ConfigError, SimulationConfig
from simulator.http_sender import send_http
from simulator.kafka_sender import ensure_topics, send_kafka
from simulator.simulation import Simulation, simulate
from simulator.truth import TRUTH_FORMAT, TRUTH_VERSION, compute_truth
from simulator.verify import VerifyError, VerifyReport, check_truth

logger = logging.getLogger(__name__)

VERIFY_RETRY_S = 2.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.topic_prefix is not None:
        settings = replace(settings, topic_prefix=args.topic_prefix)
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    truth_path = args.truth or settings.state_dir / "sim" / "truth.json"
    try:
        if args.command == "verify":
            return command_verify(args, settings, truth_path)
        config = config_from_args(args, settings)
        if args.command == "truth":
            return command_truth(config, truth_path)
        return command_run(args, config, settings, truth_path)
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.cli",
        description="Generate social-network traffic, send it, and check the "
        "live tables against the exact expected figures.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="generate traffic, send it, write the truth")
    _add_generation_options(run)
    _add_common_options(run)
    run.add_argument(
        "--via",
        choices=("kafka", "http"),
        default="kafka",
        help="send straight to the Kafka topics, or through the HTTP API "
        "(default: kafka)",
    )
    pacing = run.add_mutually_exclusive_group()
    pacing.add_argument(
        "--duration-s",
        type=float,
        default=0.0,
        help="spread the sending over this many wall-clock seconds; "
        "0 sends as fast as possible (default: 0)",
    )
    pacing.add_argument(
        "--speed",
        type=float,
        help="simulated seconds sent per wall-clock second, such as 3600 "
        "for one simulated hour per second",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="HTTP requests in flight at once with --via http (default: 16)",
    )
    run.add_argument(
        "--no-create-topics",
        action="store_true",
        help="do not create missing topics before sending with --via kafka",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    truth = commands.add_parser("truth", help="write the truth without sending")
    _add_generation_options(truth)
    _add_common_options(truth)

    verify = commands.add_parser(
        "verify", help="compare the truth file with the live tables"
    )
    _add_common_options(verify)
    verify.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="HTTP requests in flight at once (default: 16)",
    )
    verify.add_argument(
        "--wait-s",
        type=float,
        default=0.0,
        help="retry for up to this many seconds until the tables match, "
        "for tables that are still catching up (default: 0, one try)",
    )
    verify.add_argument(
        "--skip-global",
        action="store_true",
        help="skip the per-day totals of the whole deployment, which other "
        "traffic on a shared deployment also changes",
    )
    return parser


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--truth",
        type=Path,
        help="truth file path (default: <state dir>/sim/truth.json)",
    )
    parser.add_argument(
        "--api-url",
        help="base URL of the API (default: from SOCIALSTREAM_API_HOST and "
        "SOCIALSTREAM_API_PORT)",
    )
    parser.add_argument(
        "--topic-prefix",
        help="topic name prefix (default: SOCIALSTREAM_TOPIC_PREFIX)",
    )


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    defaults = SimulationConfig()
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--users", type=int, default=defaults.users, help="number of users"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=defaults.days,
        help="number of simulated UTC days, at most the retention period",
    )
    parser.add_argument(
        "--messages-per-day",
        type=int,
        default=defaults.messages_per_day,
        help="messages posted on each simulated day",
    )
    parser.add_argument(
        "--start",
        type=_parse_day,
        help="first simulated day as YYYY-MM-DD (default: today minus days - 1)",
    )
    parser.add_argument(
        "--user-prefix",
        default=defaults.user_prefix,
        help=f"prefix of the user names (default: {defaults.user_prefix!r})",
    )
    parser.add_argument(
        "--likes-per-message",
        type=float,
        default=defaults.likes_per_message,
        help="mean like interactions per message",
    )
    parser.add_argument(
        "--sessions-per-user-per-day",
        type=float,
        default=defaults.sessions_per_user_per_day,
        help="mean view sessions per user and day",
    )
    parser.add_argument(
        "--late-view-share",
        type=float,
        default=defaults.late_view_share,
        help="share of view sessions reported hours late (0 to 1)",
    )
    parser.add_argument(
        "--invalid-share",
        type=float,
        default=defaults.invalid_share,
        help="invalid records to add, as a share of the valid records, "
        "with --via kafka (0 to 1)",
    )
    parser.add_argument(
        "--duplicate-share",
        type=float,
        default=defaults.duplicate_share,
        help="share of the valid records sent a second time with --via kafka (0 to 1)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help="tab-separated corpus of message texts: id, rating, text "
        "(default: the bundled VADER tweets)",
    )


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a date as YYYY-MM-DD, got {text!r}"
        ) from None


def config_from_args(args: argparse.Namespace, settings: Settings) -> SimulationConfig:
    return SimulationConfig(
        seed=args.seed,
        users=args.users,
        days=args.days,
        messages_per_day=args.messages_per_day,
        start=args.start,
        user_prefix=args.user_prefix,
        likes_per_message=args.likes_per_message,
        sessions_per_user_per_day=args.sessions_per_user_per_day,
        late_view_share=args.late_view_share,
        invalid_share=args.invalid_share,
        duplicate_share=args.duplicate_share,
        retention_days=settings.retention_days,
        corpus=args.corpus,
    )


# ---------------------------------------------------------------- commands


def command_truth(config: SimulationConfig, truth_path: Path) -> int:
    simulation = simulate(config)
    write_truth(truth_path, simulation.truth)
    print(f"wrote the truth of {len(simulation.events)} records to {truth_path}")
    return 0


def command_run(
    args: argparse.Namespace,
    config: SimulationConfig,
    settings: Settings,
    truth_path: Path,
) -> int:
    simulation = simulate(config)
    api_url = args.api_url or settings.api_url
    logger.info(
        "simulating %d users over %d days from %s, seed %d, via %s",
        config.users,
        config.days,
        simulation.plan.start,
        config.seed,
        args.via,
    )
    try:
        if args.via == "kafka":
            truth = asyncio.run(_run_kafka(args, simulation, settings))
        else:
            truth = asyncio.run(_run_http(args, simulation, settings, api_url))
    except KafkaError as error:
        print(
            f"error: sending to Kafka at {settings.kafka_bootstrap} failed: "
            f"{error!r}; check the stack with scripts/stack.py status",
            file=sys.stderr,
        )
        return 1
    truth["run"]["api_url"] = api_url
    write_truth(truth_path, truth)
    print(f"wrote the truth to {truth_path}")
    failed = sum(truth["run"]["report"]["failed"].values())
    if failed:
        print(
            f"error: {failed} events failed to send; the truth leaves them out, "
            "see the warnings above for the reasons",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run_kafka(
    args: argparse.Namespace, simulation: Simulation, settings: Settings
) -> dict[str, Any]:
    if not args.no_create_topics:
        await ensure_topics(settings)
    report = await send_kafka(
        simulation.events,
        settings,
        duration_s=args.duration_s,
        speed=args.speed,
        progress=not args.no_progress,
    )
    print(report.summary())
    truth = dict(simulation.truth)
    truth["run"] = {
        "via": "kafka",
        "topic_prefix": settings.topic_prefix,
        "report": report.to_json(),
    }
    return truth


async def _run_http(
    args: argparse.Namespace,
    simulation: Simulation,
    settings: Settings,
    api_url: str,
) -> dict[str, Any]:
    skipped = sum(record.kind != "valid" for record in simulation.events)
    if skipped:
        logger.info(
            "leaving out %d invalid and duplicate records, which only --via "
            "kafka sends",
            skipped,
        )
    result = await send_http(
        simulation.events,
        api_url,
        settings.jwt_secret,
        duration_s=args.duration_s,
        speed=args.speed,
        concurrency=args.concurrency,
        progress=not args.no_progress,
    )
    print(result.report.summary())
    truth = compute_truth(
        result.records,
        retention_days=simulation.config.retention_days,
        users=simulation.plan.users,
        config=simulation.truth["config"],
    )
    truth["run"] = {
        "via": "http",
        "topic_prefix": settings.topic_prefix,
        "report": result.report.to_json(),
    }
    return truth


def command_verify(
    args: argparse.Namespace, settings: Settings, truth_path: Path
) -> int:
    try:
        truth = read_truth(truth_path)
    except FileNotFoundError:
        print(
            f"error: truth file {truth_path} not found; write it with the run "
            "or truth command",
            file=sys.stderr,
        )
        return 2
    api_url = args.api_url or truth.get("run", {}).get("api_url") or settings.api_url
    try:
        report = asyncio.run(_verify_until(truth, api_url, args))
    except VerifyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for difference in report.differences:
        print(
            f"{difference.aggregate}\t{difference.key}\t"
            f"expected {difference.expected!r}\tactual {difference.actual!r}"
        )
    print(report.summary())
    return 0 if not report.differences else 1


async def _verify_until(
    truth: dict[str, Any], api_url: str, args: argparse.Namespace
) -> VerifyReport:
    deadline = time.monotonic() + args.wait_s
    while True:
        report = await check_truth(
            truth,
            api_url,
            concurrency=args.concurrency,
            global_figures=not args.skip_global,
        )
        if not report.differences or time.monotonic() >= deadline:
            return report
        logger.info(
            "%d values still differ; retrying in %.0f s",
            len(report.differences),
            VERIFY_RETRY_S,
        )
        await asyncio.sleep(VERIFY_RETRY_S)


def read_truth(path: Path) -> dict[str, Any]:
    """Read a truth file; raise ValueError when it is not one."""
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"truth file {path} is not valid JSON: {error}") from None
    if not isinstance(truth, dict) or truth.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path} is not a simulator truth file ({TRUTH_FORMAT})")
    if truth.get("version") != TRUTH_VERSION:
        raise ValueError(
            f"truth file {path} has version {truth.get('version')!r}; this "
            f"simulator reads version {TRUTH_VERSION}"
        )
    return truth


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Write the truth as JSON, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
