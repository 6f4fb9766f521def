"""Open-loop HTTP load generator, run as its own process by the benchmarks.

    python bench/loadgen.py URL --rate 500 --seconds 20 [--method POST --body JSON
                            --header 'Authorization: Bearer ...']

Sends requests at a fixed rate whatever the response times, and measures
each latency from the request's scheduled start, so a slow server cannot
hide its queueing delay (no coordinated omission). Prints one JSON line with
the achieved rate, error count and latency percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return round(ordered[index], 3)


async def run(args: argparse.Namespace) -> dict[str, float]:
    headers = dict(h.split(": ", 1) for h in args.header)
    body = args.body.encode() if args.body else None
    if body:
        headers.setdefault("Content-Type", "application/json")
    latencies: list[tuple[int, float]] = []
    errors = 0
    total = int(args.rate * args.seconds)
    interval = 1.0 / args.rate
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(index: int, scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.request(
                    args.method, args.url, data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1
            latencies.append((index, (time.perf_counter() - scheduled) * 1000.0))

        tasks = []
        started = time.perf_counter()
        for index in range(total):
            scheduled = started + index * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    # The first 5 % of the schedule warms up connections and is left out.
    skip = int(total * 0.05)
    warm = sorted(ms for index, ms in latencies if index >= skip)
    return {
        "requests": total,
        "achieved_rps": round(total / elapsed, 1),
        "errors": errors,
        "p50_ms": percentile(warm, 0.50),
        "p90_ms": percentile(warm, 0.90),
        "p99_ms": percentile(warm, 0.99),
        "max_ms": round(warm[-1], 3) if warm else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
