"""The simulator through the running API, checked with verify.

Needs a worker with the API on ``SOCIALSTREAM_API_PORT``; the tests skip
when ``/health`` does not respond with 200. User names get a random prefix, so the
figures keyed by user or message belong to this test alone, and the
per-day totals of the shared deployment are not checked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.settings import Settings
from simulator.config import SimulationConfig
from simulator.http_sender import send_http
from simulator.simulation import simulate
from simulator.truth import compute_truth
from simulator.verify import check_truth

pytestmark = pytest.mark.integration

# The tables are fed by agents that lag behind the API by a moment.
VERIFY_WAIT_S = 60.0
VERIFY_RETRY_S = 2.0


@pytest.fixture
async def api_url() -> AsyncIterator[str]:
    settings = Settings.from_env()
    url = settings.api_url
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=3)
        ) as session:
            async with session.get(f"{url}/health") as response:
                healthy = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        healthy = False
    if not healthy:
        pytest.skip(
            f"the API at {url} does not respond to GET /health with 200; "
            "start the worker with `make up` to run this test"
        )
    if not settings.jwt_secret:
        pytest.skip("SOCIALSTREAM_JWT_SECRET is not set and .state/stack.env has none")
    yield url


async def test_http_run_matches_tables(api_url: str) -> None:
    settings = Settings.from_env()
    config = SimulationConfig(
        seed=31,
        users=4,
        days=1,
        messages_per_day=12,
        user_prefix=f"simtest{uuid.uuid4().hex[:8]}-",
    )
    simulation = simulate(config)
    run = await send_http(simulation.events, api_url, settings.jwt_secret)
    assert dict(run.report.failed) == {}
    truth = compute_truth(
        run.records,
        retention_days=settings.retention_days,
        users=simulation.plan.users,
    )
    assert len(truth["message_ids"]) == 12

    loop = asyncio.get_running_loop()
    deadline = loop.time() + VERIFY_WAIT_S
    while True:
        report = await check_truth(truth, api_url, global_figures=False)
        if not report.differences or loop.time() > deadline:
            break
        await asyncio.sleep(VERIFY_RETRY_S)
    assert [str(difference) for difference in report.differences] == []
