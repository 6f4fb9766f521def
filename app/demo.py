"""The main job: simulated traffic through the whole pipeline, ending in a report.

    python -m app.demo [--users 100 --days 3 --messages-per-day 300 --seed 7]

``make demo`` runs it after ``make stack-up``. Every run is a fresh
deployment (its own topics, Faust application id, MongoDB database and
archive prefix) so the simulator's truth covers exactly what the tables
hold. The job starts a worker with the API, sends the simulation straight
to Kafka and waits for zero consumer lag. Then it archives the topics to
Parquet, runs the Spark backfill and the reconciliation, compares the tables
with the truth, and writes ``.state/report.json`` and ``.state/report.html``.
The worker is left running for the curl commands printed at the end, and
``make down`` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from app.cli import create_event_topics, start_background_worker, stop_background_worker
from app.deployment import delete_topics, drop_database
from app.events import date_to_day
from app.lag import wait_for_zero_lag
from app.logs import configure_logging
from app.report import write_report
from app.settings import Settings, SettingsError, describe_variables

logger = logging.getLogger(__name__)

LAG_TIMEOUT_S = 900.0
TOP = 10


def demo_settings(base: Settings, run_id: str) -> Settings:
    """Return the settings of a fresh deployment named after ``run_id``."""
    archive = base.archive_url.rstrip("/")
    if base.archive_is_s3:
        bucket = archive.split("/")[2]
        archive = f"s3://{bucket}/demo-{run_id}/events"
    else:
        archive = f"{archive}/demo-{run_id}"
    return replace(
        base,
        topic_prefix=f"demo-{run_id}-",
        app_id=f"demo-{run_id}",
        mongo_db=f"demo_{run_id}",
        archive_url=archive,
    )


def previous_deployment(base: Settings) -> Settings | None:
    """Return the settings of the last demo deployment, from ``demo.env``."""
    path = base.state_dir / "demo.env"
    if not path.is_file():
        return None
    values = dict(
        line.split("=", 1)
        for line in path.read_text(encoding="utf-8").splitlines()
        if "=" in line
    )
    app_id = values.get("SOCIALSTREAM_APP_ID", "")
    if not app_id.startswith("demo-"):
        return None
    run_id = app_id.removeprefix("demo-")
    return demo_settings(base, run_id)


def remove_deployment(settings: Settings) -> None:
    """Delete a demo deployment's topics, database, archive and local tables.

    Each run creates a deployment of its own, so without this the broker,
    MongoDB and the bucket would keep every earlier run.
    """
    import shutil

    topics = asyncio.run(delete_topics(settings))
    drop_database(settings)
    if settings.archive_is_s3:
        from app.storage import s3_filesystem

        filesystem = s3_filesystem(settings)
        path = settings.archive_url.removeprefix("s3://").rsplit("/", 1)[0]
        if filesystem.exists(path):
            filesystem.rm(path, recursive=True)
    else:
        shutil.rmtree(settings.archive_url, ignore_errors=True)
    for folder in (settings.state_dir / "faust").glob(f"{settings.app_id}-*"):
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"removed the previous deployment {settings.app_id}: {len(topics)} topics, "
        f"database {settings.mongo_db} and its archive"
    )


def export_settings(settings: Settings) -> dict[str, str]:
    """Set the environment of child processes to ``settings``; return the values."""
    values = {}
    for variable, _default, _help in describe_variables():
        name = _field_name(variable)
        values[variable] = str(getattr(settings, name))
    os.environ.update(values)
    return values


def _field_name(variable: str) -> str:
    return variable.removeprefix("SOCIALSTREAM_").lower()


async def fetch_json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as response:
        response.raise_for_status()
        return await response.json()


async def live_figures(
    api_url: str, days: list[str], users: list[str], message_ids: list[str]
) -> dict[str, Any]:
    """Read the report's figures from the live tables over HTTP."""
    window = {"from": days[0], "to": days[-1]}
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(base_url=api_url, connector=connector) as session:
        query = f"?from={window['from']}&to={window['to']}"
        messages, likes, views, sentiment = await asyncio.gather(
            fetch_json(session, f"/stats/messages/daily{query}"),
            fetch_json(session, f"/stats/likes/daily{query}"),
            fetch_json(session, f"/stats/views/daily{query}"),
            fetch_json(session, f"/stats/sentiment/daily{query}"),
        )
        user_rows = await asyncio.gather(
            *(
                fetch_json(session, f"/stats/users/{user}/messages{query}")
                for user in users
            )
        )
        like_rows = await asyncio.gather(
            *(
                fetch_json(session, f"/stats/messages/{mid}/likes{query}")
                for mid in message_ids
            )
        )
        view_rows = await asyncio.gather(
            *(
                fetch_json(session, f"/stats/messages/{mid}/views")
                for mid in message_ids
            )
        )
        lag = await fetch_json(session, "/metrics/lag")
        metrics_text = await (await session.get("/metrics")).text()
        most_liked = sorted(
            like_rows, key=lambda r: (-r["like_count"], r["message_id"])
        )
        liked = []
        for row in most_liked[:TOP]:
            message = await fetch_json(session, f"/messages/{row['message_id']}")
            liked.append(
                {
                    "message_id": row["message_id"],
                    "user": message["user"],
                    "like_count": row["like_count"],
                    "body": message["body"][:80],
                }
            )

    daily = []
    for m, lk, v, s in zip(
        messages["days"], likes["days"], views["days"], sentiment["days"], strict=True
    ):
        daily.append(
            {
                "day": m["day"],
                "messages": m["messages"],
                "likes": lk["likes"],
                "unlikes": lk["unlikes"],
                "view_ms": v["view_ms"],
                "views": v["views"],
                "sentiment": {k: s[k] for k in s if k != "day"},
            }
        )
    top_users = sorted(
        ({"user": r["user"], "messages": r["total"]} for r in user_rows),
        key=lambda r: (-r["messages"], r["user"]),
    )[:TOP]
    most_viewed = sorted(view_rows, key=lambda r: (-r["view_ms"], r["message_id"]))[
        :TOP
    ]
    return {
        "daily": daily,
        "top_users": top_users,
        "most_liked": liked,
        "most_viewed": most_viewed,
        "lag": lag,
        "events_processed": processed_count(metrics_text),
    }


def processed_count(metrics_text: str) -> int:
    """Count the records of the event topics that the agents have handled.

    Each record ends in exactly one of the applied, duplicate and rejected
    counters, or waits parked (a like that came before its message).
    """
    total = 0
    parked = {
        "socialstream_parked_likes_total": 1,
        "socialstream_unparked_likes_total": -1,
    }
    names = (
        "socialstream_applied_events_total",
        "socialstream_duplicate_events_total",
        "socialstream_rejected_events_total",
    )
    for line in metrics_text.splitlines():
        if line.startswith(names) and 'topic="' in line:
            topic = line.split('topic="', 1)[1].split('"', 1)[0]
            if topic.rsplit("-", 1)[-1] in {"messages", "likes", "views"}:
                total += int(float(line.rsplit(" ", 1)[1]))
        elif line.split(" ", 1)[0] in parked:
            total += parked[line.split(" ", 1)[0]] * int(float(line.rsplit(" ", 1)[1]))
    return total


def run(args: argparse.Namespace) -> int:
    started_at = datetime.now(UTC)
    run_id = started_at.strftime("%Y%m%d%H%M%S")
    base = Settings.from_env()
    previous = previous_deployment(base)
    settings = demo_settings(base, run_id)
    if stop_background_worker(settings):
        print("stopped the worker that was running")
    if previous is not None and previous.app_id != settings.app_id:
        remove_deployment(previous)
    env = export_settings(settings)
    (settings.state_dir / "demo.env").write_text(
        "".join(f"{k}={v}\n" for k, v in env.items() if "SECRET" not in k)
    )
    print(
        f"deployment demo-{run_id}: topics {settings.topic_prefix}*, "
        f"database {settings.mongo_db}, archive {settings.archive_url}"
    )

    from simulator import SimulationConfig, check_truth, send_kafka, simulate

    today = started_at.date()
    config = SimulationConfig(
        seed=args.seed,
        users=args.users,
        days=args.days,
        messages_per_day=args.messages_per_day,
        # The last full days before today, so no simulated message is dated
        # after the moment the job runs.
        start=today - timedelta(days=args.days),
        retention_days=settings.retention_days,
    )
    simulation = simulate(config)
    truth = simulation.truth
    events_sent = len(simulation.events)
    print(
        f"simulated {events_sent:,} records over {args.days} days for "
        f"{args.users} users"
    )
    sent = truth["sent"]
    print(
        "  of which "
        + ", ".join(
            f"{topic} {counts['valid']:,} valid, {counts['invalid']:,} invalid "
            f"and {counts['duplicate']:,} duplicates"
            for topic, counts in sent.items()
        )
        + "; a like or unlike that changes nothing is valid but not counted"
    )

    asyncio.run(create_event_topics(settings))
    start_background_worker(settings)

    clock = time.perf_counter()
    send_report = asyncio.run(
        send_kafka(
            simulation.events, settings, duration_s=args.duration_s, progress=True
        )
    )
    print(send_report.summary())
    asyncio.run(wait_for_zero_lag(settings, timeout_s=LAG_TIMEOUT_S, poll_s=0.5))
    processing_s = time.perf_counter() - clock
    print(f"every record processed {processing_s:.1f} s after the first send")

    from batch_backfill.archiver import archive_until_caught_up
    from batch_backfill.job import backfill
    from batch_backfill.reconcile import reconcile

    archived = asyncio.run(archive_until_caught_up(settings, timeout=LAG_TIMEOUT_S))
    print(f"archived {archived.rows:,} rows in {len(archived.files)} Parquet files")
    days = truth["days"]
    from_day = date_to_day(datetime.fromisoformat(days[0]).date())
    to_day = date_to_day(datetime.fromisoformat(days[-1]).date())
    batch = backfill(
        settings,
        from_day,
        to_day,
        master=args.spark_master,
        extra_conf={"spark.ui.showConsoleProgress": "false"},
    )
    print(f"backfill read {batch.rows_read:,} rows in {batch.seconds:.1f} s")
    differences = reconcile(settings, from_day, to_day, settings.api_url)
    truth_report = asyncio.run(check_truth(truth, settings.api_url))
    print(
        f"stream versus batch: {len(differences)} differences; "
        f"tables versus truth: {truth_report.summary()}"
    )

    figures = asyncio.run(
        live_figures(settings.api_url, days, truth["users"], truth["message_ids"])
    )
    duration_s = (datetime.now(UTC) - started_at).total_seconds()
    applied = figures["lag"]["rollup"]
    report = {
        "events_sent": events_sent,
        "events_processed": figures["events_processed"],
        "events_archived": archived.rows,
        "differences": len(differences),
        "truth_differences": len(truth_report.differences),
        "truth_values_checked": truth_report.checked,
        "lag_ms": {
            "p50": applied["p50"],
            "p99": applied["p99"],
            "applied": figures["lag"]["applied"],
            "rollup": applied,
        },
        "throughput_events_per_s": round(events_sent / processing_s, 1),
        "processing_s": round(processing_s, 2),
        "duration_s": round(duration_s, 2),
        "backfill_s": round(batch.seconds, 2),
        "sent_per_topic": truth["sent"],
        "daily": figures["daily"],
        "top_users": figures["top_users"],
        "most_liked": figures["most_liked"],
        "most_viewed": figures["most_viewed"],
        "difference_list": [asdict(d) for d in differences],
        "truth_difference_list": [asdict(d) for d in truth_report.differences][:100],
        "run": {
            "deployment": f"demo-{run_id}",
            "started_at": started_at.isoformat(),
            "api_url": settings.api_url,
            "config": truth["config"],
        },
    }
    json_path, html_path = write_report(report, settings.state_dir)
    print_summary(report, settings, json_path, html_path)
    ok = (
        report["differences"] == 0
        and report["truth_differences"] == 0
        and report["events_processed"] == events_sent
    )
    return 0 if ok else 1


def print_summary(
    report: dict[str, Any], settings: Settings, json_path: Any, html_path: Any
) -> None:
    from app.auth import mint_token

    print("\n== socialstream report ==")
    print(
        f"{'day':<12}{'messages':>9}{'likes':>7}{'unlikes':>8}{'views':>7}"
        f"{'view min':>10}{'compound':>10}"
    )
    for row in report["daily"]:
        print(
            f"{row['day']:<12}{row['messages']:>9}{row['likes']:>7}"
            f"{row['unlikes']:>8}{row['views']:>7}{row['view_ms'] / 60000:>10.1f}"
            f"{row['sentiment']['mean_compound']:>10.4f}"
        )
    print(
        "top users: "
        + ", ".join(f"{u['user']} ({u['messages']})" for u in report["top_users"][:5])
    )
    print(
        "most liked: "
        + ", ".join(
            f"{m['message_id'][:8]} ({m['like_count']})"
            for m in report["most_liked"][:5]
        )
    )
    print(
        "most viewed, by view time: "
        + ", ".join(
            f"{m['message_id'][:8]} ({m['view_ms'] / 60000:.1f} min, "
            f"{m['views']} views)"
            for m in report["most_viewed"][:5]
        )
    )
    print(
        f"events sent {report['events_sent']:,}, processed "
        f"{report['events_processed']:,}, archived {report['events_archived']:,}"
    )
    print(
        f"stream versus batch differences: {report['differences']}; "
        f"tables versus truth differences: {report['truth_differences']}"
    )
    print(
        f"lag from source record to rollup p50 {report['lag_ms']['p50']:.1f} ms, "
        f"p99 {report['lag_ms']['p99']:.1f} ms;"
        f" throughput {report['throughput_events_per_s']:,.0f} events/s;"
        f" whole job {report['duration_s']:.0f} s"
    )
    print(f"report: {json_path} and {html_path}")
    token = mint_token(settings, "alice", ttl_s=86_400)
    url = settings.api_url
    print("\nThe API is still running. Try it (make down stops everything):")
    print(f"  export TOKEN={token}")
    print(f"  curl -s '{url}/messages?limit=5'")
    print(
        f'  curl -s -X POST {url}/messages -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' -d '{\"body\": \"Hello from curl!\"}'"
    )
    print(
        f"  curl -s -X PUT {url}/messages/MESSAGE_ID/likes "
        '-H "Authorization: Bearer $TOKEN"'
    )
    print(
        f"  curl -s '{url}/stats/messages/daily?from={report['daily'][0]['day']}"
        f"&to={report['daily'][-1]['day']}'"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--messages-per-day", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--duration-s",
        type=float,
        default=0.0,
        help="spread the sending over this many seconds (0: at once)",
    )
    parser.add_argument(
        "--spark-master",
        default=None,
        help="Spark master URL (default SOCIALSTREAM_SPARK_MASTER)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    if not settings.jwt_secret:
        print("error: no JWT secret; run 'make stack-up' first", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
