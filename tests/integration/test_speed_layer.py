"""The speed layer against the simulator's truth, with one worker and with two.

A seeded simulation of several days, with late views, duplicates, invalid
records, repeated likes and unlikes without a like, goes straight to Kafka.
Once the worker group has no lag, every figure the truth lists is read over
HTTP and must match exactly. With two workers, it must match through either.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.lag import wait_for_zero_lag
from simulator import SimulationConfig, check_truth, send_kafka, simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAG_TIMEOUT_S = 300.0


def small_config(seed: int) -> SimulationConfig:
    today = datetime.now(UTC).date()
    return SimulationConfig(
        seed=seed,
        users=12,
        days=3,
        messages_per_day=25,
        start=today - timedelta(days=2),
        likes_per_message=3.0,
        sessions_per_user_per_day=2.0,
        views_per_session=2.0,
        late_view_share=0.1,
        invalid_share=0.03,
        duplicate_share=0.03,
    )


async def wait_processed(*workers) -> None:
    """Wait for zero consumer lag; on time-out, fail with the workers' logs."""
    try:
        await wait_for_zero_lag(workers[0].settings, timeout_s=LAG_TIMEOUT_S)
    except TimeoutError as error:
        logs = "\n\n".join(f"--- {w.url}\n{w.log_tail(80)}" for w in workers)
        pytest.fail(f"{error}\n{logs}")


def assert_simulation_shape(sent: dict[str, dict[str, int]]) -> None:
    assert sent["messages"]["valid"] > 0
    assert sent["likes"]["valid"] > 0
    assert sent["views"]["valid"] > 0
    assert sum(topic["invalid"] for topic in sent.values()) > 0
    assert sum(topic["duplicate"] for topic in sent.values()) > 0


async def test_one_worker_and_replay_match_truth(worker_factory) -> None:
    worker = worker_factory()
    simulation = simulate(small_config(seed=11))
    assert_simulation_shape(simulation.truth["sent"])

    await send_kafka(simulation.events, worker.settings)
    await wait_processed(worker)

    report = await check_truth(simulation.truth, worker.url)
    assert report.checked > 100
    assert report.differences == []

    # Kappa reprocessing: a new application id reads the same topics from
    # offset 0 into tables of its own and must rebuild the same figures.
    replay_id = f"{worker.settings.app_id}-replay"
    replay = worker_factory(
        join=worker,
        env={"SOCIALSTREAM_APP_ID": replay_id, "SOCIALSTREAM_MONGO_DB": replay_id},
    )
    await wait_processed(replay)
    replayed = await check_truth(simulation.truth, replay.url)
    assert replayed.checked == report.checked
    assert replayed.differences == []


async def test_restart_recovers_from_changelogs(worker_factory) -> None:
    first = worker_factory()
    simulation = simulate(small_config(seed=13))
    await send_kafka(simulation.events, first.settings)
    await wait_processed(first)
    first.stop()

    # Same deployment, new state folder: every table comes from its changelog.
    restarted = worker_factory(join=first)
    await wait_processed(restarted)
    report = await check_truth(simulation.truth, restarted.url)
    assert report.checked > 100
    assert report.differences == []


async def test_two_workers_match_truth(worker_factory) -> None:
    first = worker_factory()
    second = worker_factory(join=first)
    simulation = simulate(small_config(seed=12))

    await send_kafka(simulation.events, first.settings)
    await wait_processed(first, second)

    for worker in (first, second):
        report = await check_truth(simulation.truth, worker.url)
        assert report.checked > 100, worker.url
        assert report.differences == [], worker.url
