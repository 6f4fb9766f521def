"""Freshness: from an API response to the write being visible, under load.

    .venv/bin/python bench/freshness.py --probes 200 --rate 1000 --runs 3

While a background producer writes ``--rate`` view events per second to the
worker's topics, probes post a message and like it through the API. Each
probe measures, from the HTTP response of the post, the time until the
message is in the feed (``GET /messages/{id}``), and from the HTTP response
of the like, the time until the like is in the tables
(``GET /stats/messages/{id}/likes``). The rollup figure is the time from the
message's arrival in the feed until the author's message count includes it
(``GET /stats/users/{user}/messages``, one hop further, through the rollup
topic), so the time from the post is the sum of the two. Visibility is
polled every 2 ms.

Before the measured probes, the worker processes the load for 10 s and
answers ``--warmup-probes`` probes (10 by default) that are not counted, so
the figures are those of a running worker, not of its first requests.

The worker's own processing lag over the probes, from each record's Kafka
timestamp to the end of the batch that applied it (``/metrics/lag``, every
record, the background views included), is printed too: when it is small and
a visibility figure is large, the delay is not in the agents. The baseline,
in the same run, is the time a bare aiokafka consumer needs to see a record
after ``send_and_wait`` returned: the broker's own share of the delay.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.auth import mint_token  # noqa: E402
from app.cli import create_event_topics  # noqa: E402
from app.events import make_event, new_message_id, now_micros  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import (  # noqa: E402
    append_result,
    bench_parser,
    create_topic,
    free_port,
    isolated_settings,
    median,
    remove_deployment,
    start_worker,
    wait_healthy,
)

POLL_S = 0.002
WARMUP_S = 10.0
# Probes run and not counted before the measured ones. In the first second or
# two after a fresh deployment's first post and like, records reached the
# agents in pulses about 100 ms apart. Measured, 10 probes cover that.
WARMUP_PROBES = 10


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def background_load(settings: Settings, rate: float, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=2)
    await producer.start()
    message_id = new_message_id()
    posted = make_event(
        "MessagePosted", message_id=message_id, user="loader", body="background load"
    )
    await producer.send_and_wait(
        settings.topic("messages"), posted.to_json(), key=message_id.encode()
    )
    started = time.perf_counter()
    sent = 0
    try:
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate)
            while sent < due:
                now = now_micros()
                view = make_event(
                    "ViewRecorded",
                    message_id=message_id,
                    user=f"viewer{sent % 500}",
                    occurred_at=now,
                    started_at=now - 1000,
                    duration_ms=500,
                )
                await producer.send(
                    settings.topic("views"), view.to_json(), key=message_id.encode()
                )
                sent += 1
            await asyncio.sleep(0.005)
    finally:
        await producer.stop()


async def wait_visible(
    session: aiohttp.ClientSession, url: str, check: object
) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 30:
        async with session.get(url) as response:
            if response.status == 200 and check(await response.json()):  # type: ignore[operator]
                return (time.perf_counter() - started) * 1000.0
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{url} did not show the write within 30 s")


async def probe(
    session: aiohttp.ClientSession, settings: Settings, token: str, user: str
) -> tuple[float, float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    base = settings.api_url
    async with session.post(
        f"{base}/messages", json={"body": f"probe {uuid.uuid4()}"}, headers=headers
    ) as response:
        assert response.status == 201, await response.text()
        message = await response.json()
    message_id = message["message_id"]
    before = await _user_total(session, base, user)
    feed_ms = await wait_visible(
        session,
        f"{base}/messages/{message_id}",
        lambda body: body.get("message_id") == message_id,
    )
    rollup_ms = await wait_visible(
        session,
        f"{base}/stats/users/{user}/messages",
        lambda body: body["total"] > before,
    )
    async with session.put(
        f"{base}/messages/{message_id}/likes", headers=headers
    ) as response:
        assert response.status < 300, await response.text()
    like_ms = await wait_visible(
        session,
        f"{base}/stats/messages/{message_id}/likes",
        lambda body: body["like_count"] == 1,
    )
    return feed_ms, like_ms, rollup_ms + feed_ms


async def _user_total(session: aiohttp.ClientSession, base: str, user: str) -> int:
    async with session.get(f"{base}/stats/users/{user}/messages") as response:
        return int((await response.json())["total"])


async def kafka_baseline(settings: Settings, samples: int) -> list[float]:
    topic = settings.topic("baseline")
    await create_topic(settings, topic)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    await asyncio.sleep(1.0)
    latencies = []
    try:
        for _ in range(samples):
            await producer.send_and_wait(topic, b"x")
            started = time.perf_counter()
            await consumer.getone()
            latencies.append((time.perf_counter() - started) * 1000.0)
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


async def one_run(probes: int, rate: float, warmup_probes: int) -> dict[str, float]:
    settings = isolated_settings("fresh", SOCIALSTREAM_API_PORT=str(free_port()))
    await create_event_topics(settings)
    worker = start_worker(settings, settings.log_dir / f"bench-{settings.app_id}.log")
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(wait_healthy, settings.api_url)
        loader = asyncio.create_task(background_load(settings, rate, stop))
        # The worker joins its group, opens its tables and works off the
        # first second's backlog after /health responds: about 4 s with the
        # load on, in which records waited up to 1.9 s. Probes start later.
        await asyncio.sleep(WARMUP_S)
        user = "prober"
        token = mint_token(settings, user, ttl_s=3600)
        feed, like, rollup = [], [], []
        lag_url = f"{settings.api_url}/metrics/lag"
        async with aiohttp.ClientSession() as session:
            for _ in range(warmup_probes):
                await probe(session, settings, token, user)
            async with session.get(f"{lag_url}?reset=1") as response:
                response.raise_for_status()
            for _ in range(probes):
                feed_ms, like_ms, rollup_ms = await probe(
                    session, settings, token, user
                )
                feed.append(feed_ms)
                like.append(like_ms)
                rollup.append(rollup_ms)
                await asyncio.sleep(0.05)
            async with session.get(lag_url) as response:
                lag = (await response.json())["applied"]
        stop.set()
        await loader
        baseline = await kafka_baseline(settings, probes)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    await remove_deployment(settings)
    return {
        "feed_p50": percentile(feed, 0.5),
        "feed_p99": percentile(feed, 0.99),
        "like_p50": percentile(like, 0.5),
        "like_p99": percentile(like, 0.99),
        "rollup_p50": percentile(rollup, 0.5),
        "rollup_p99": percentile(rollup, 0.99),
        "applied_p50": lag["p50"],
        "applied_p99": lag["p99"],
        "kafka_p50": percentile(baseline, 0.5),
        "kafka_p99": percentile(baseline, 0.99),
        "kafka_mean": statistics.fmean(baseline),
    }


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--probes", type=int, default=200, help="posts and likes timed per run"
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="background events per second"
    )
    parser.add_argument(
        "--warmup-probes",
        type=int,
        default=WARMUP_PROBES,
        help="probes run first and not counted",
    )
    args = parser.parse_args()

    runs = []
    for run in range(args.runs):
        result = asyncio.run(one_run(args.probes, args.rate, args.warmup_probes))
        runs.append(result)
        print(
            f"run {run + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in result.items()),
            flush=True,
        )

    def row(label: str, key: str) -> tuple[str, str]:
        p50 = median([r[f"{key}_p50"] for r in runs])
        p99 = median([r[f"{key}_p99"] for r in runs])
        return (f"{label}: p50 / p99 ms", f"{p50:.1f} / {p99:.1f}")

    rows = [
        ("background load, events/s", f"{args.rate:g}"),
        (
            "probes per run, and uncounted probes run first",
            f"{args.probes}, {args.warmup_probes}",
        ),
        row("message in the feed", "feed"),
        row("like in the message's table", "like"),
        row("message in the author's rollup", "rollup"),
        row("worker: Kafka timestamp to applied, every record", "applied"),
        row("baseline: bare Kafka produce to consume", "kafka"),
    ]
    for name, value in rows:
        print(f"{name}: {value}")
    if not args.no_record:
        command = (
            f"python bench/freshness.py --probes {args.probes} "
            f"--rate {args.rate:g} --warmup-probes {args.warmup_probes} "
            f"--runs {args.runs}"
        )
        append_result("Freshness", command, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
