"""API throughput and latency under open-loop load from a separate process.

    .venv/bin/python bench/api_latency.py --rate 500 --seconds 20 --runs 3

Seeds a fresh deployment with messages, then loads, each ``--runs`` times:
a bare aiohttp server that returns the same feed bytes from memory (the
baseline: the cost of the HTTP stack alone), the feed, a per-user table
read and a message post. ``bench/loadgen.py`` sends the requests at a fixed
rate and measures latency from each request's scheduled start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.auth import mint_token  # noqa: E402
from app.lag import wait_for_zero_lag  # noqa: E402
from app.settings import PROJECT_ROOT  # noqa: E402
from bench.common import (  # noqa: E402
    append_result,
    bench_parser,
    free_port,
    isolated_settings,
    median,
    produce,
    remove_deployment,
    start_worker,
    wait_healthy,
    workload,
)

LOADGEN = str(PROJECT_ROOT / "bench" / "loadgen.py")


def load(url: str, rate: float, seconds: float, *extra: str) -> dict[str, float]:
    result = subprocess.run(
        [
            sys.executable,
            LOADGEN,
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed on {url}: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def start_baseline(body: bytes, port: int) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(f"""
        from aiohttp import web
        body = {body!r}
        async def handle(request):
            return web.Response(body=body, content_type="application/json")
        app = web.Application()
        app.router.add_get("/", handle)
        web.run_app(app, host="127.0.0.1", port={port}, print=None,
                    access_log=None)
    """)
    return subprocess.Popen([sys.executable, "-c", code])


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--rate", type=float, default=500.0, help="reads per second, per target"
    )
    parser.add_argument(
        "--post-rate", type=float, default=200.0, help="posts per second"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of each load, per target"
    )
    args = parser.parse_args()

    settings = isolated_settings("api", SOCIALSTREAM_API_PORT=str(free_port()))
    log = settings.log_dir / f"bench-{settings.app_id}.log"
    from app.cli import create_event_topics

    asyncio.run(create_event_topics(settings))
    worker = start_worker(settings, log)
    baseline = None
    try:
        wait_healthy(settings.api_url)
        asyncio.run(produce(settings, list(workload(20_000, messages=2_000))))
        asyncio.run(wait_for_zero_lag(settings, timeout_s=600))
        feed_url = f"{settings.api_url}/messages?limit=20"
        with urllib.request.urlopen(feed_url) as response:
            feed_body = response.read()
        baseline_port = free_port()
        baseline = start_baseline(feed_body, baseline_port)
        time.sleep(1.5)
        token = mint_token(settings, "bench-user", ttl_s=3600)
        targets = {
            "baseline (bare aiohttp, same bytes)": (
                f"http://127.0.0.1:{baseline_port}/",
                args.rate,
                (),
            ),
            "feed GET /messages?limit=20": (feed_url, args.rate, ()),
            "table read GET /stats/users/user1/messages": (
                f"{settings.api_url}/stats/users/user1/messages",
                args.rate,
                (),
            ),
            "post POST /messages": (
                f"{settings.api_url}/messages",
                args.post_rate,
                (
                    "--method",
                    "POST",
                    "--body",
                    '{"body": "benchmark message"}',
                    "--header",
                    f"Authorization: Bearer {token}",
                ),
            ),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for run in range(args.runs):
            for name, (url, rate, extra) in targets.items():
                outcome = load(url, rate, args.seconds, *extra)
                results[name].append(outcome)
                print(f"run {run + 1} {name}: {outcome}", flush=True)
    finally:
        if baseline is not None:
            baseline.terminate()
        worker.terminate()
        worker.wait(timeout=60)
    asyncio.run(remove_deployment(settings))

    rows = []
    for name, outcomes in results.items():
        rows.append(
            (
                f"{name}: rps / p50 / p99 ms / errors",
                f"{median([o['achieved_rps'] for o in outcomes]):.0f} / "
                f"{median([o['p50_ms'] for o in outcomes]):.2f} / "
                f"{median([o['p99_ms'] for o in outcomes]):.2f} / "
                f"{int(sum(o['errors'] for o in outcomes))}",
            )
        )
    for name, value in rows:
        print(f"{name}: {value}")
    if not args.no_record:
        command = (
            f"python bench/api_latency.py --rate {args.rate:g} "
            f"--seconds {args.seconds:g} --runs {args.runs}"
        )
        append_result("API latency", command, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
