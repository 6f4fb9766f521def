"""The bulk intake: batching, back-pressure, and which records are acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

import agents.batching as batching
from agents.batching import ack_after, intake_batches
from agents.intake import Intake

TOPIC = "views"


class FakeFlowControl:
    def __init__(self) -> None:
        self.active = True

    async def acquire(self) -> None:
        return None

    def is_active(self) -> bool:
        return self.active


class FakeConsumer:
    def __init__(self) -> None:
        self.tracked: list[tuple[int, int]] = []
        self.acked: list[tuple[int, int]] = []
        self._committed_offset: dict[TP, int | None] = {}

    def track_message(self, message: Any) -> None:
        self.tracked.append((message.partition, message.offset))

    def ack(self, message: Any) -> None:
        self.acked.append((message.partition, message.offset))

    async def seek(self, tp: TP, offset: int) -> None:
        raise AssertionError("no gap expected")


def fake_app() -> Any:
    async def ebb() -> None:
        return None

    return SimpleNamespace(
        flow_control=FakeFlowControl(),
        producer=SimpleNamespace(
            buffer=SimpleNamespace(wait_until_ebb=ebb, size=0, max_messages=100)
        ),
        consumer=FakeConsumer(),
        consumer_generation_id=1,
    )


def message(offset: int, partition: int = 0, generation: int = 1) -> Any:
    return SimpleNamespace(
        topic=TOPIC,
        partition=partition,
        tp=TP(TOPIC, partition),
        offset=offset,
        key=b"k",
        value=b"{}",
        headers=None,
        timestamp=1_700_000_000.0,
        generation_id=generation,
    )


async def test_take_caps_batch_size() -> None:
    app = fake_app()
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    for offset in range(5):
        await on_message(message(offset))
    first = await intake.take(3, within=1.0)
    second = await intake.take(3, within=0.01)
    assert [m.offset for m in first] == [0, 1, 2]
    assert [m.offset for m in second] == [3, 4]
    assert len(intake) == 0


async def test_take_waits_for_a_first_record() -> None:
    app = fake_app()
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    waiting = asyncio.ensure_future(intake.take(10, within=0.01))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    await on_message(message(7))
    assert [m.offset for m in await waiting] == [7]


async def test_take_cadence_from_last_take() -> None:
    app = fake_app()
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    await on_message(message(0))
    assert len(await intake.take(10, within=0.5)) == 1  # the first take is at once
    await asyncio.sleep(0.4)
    await on_message(message(1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert len(await intake.take(10, within=0.5)) == 1
    # Cut 0.5 s after the previous take, so about 0.1 s after the arrival.
    assert loop.time() - started < 0.3


async def test_full_intake_holds_the_fetcher_until_a_take() -> None:
    app = fake_app()
    intake = Intake(app, maxsize=2)
    on_message = intake.handler(TP(TOPIC, 0))
    await on_message(message(0))
    await on_message(message(1))
    third = asyncio.ensure_future(on_message(message(2)))
    await asyncio.sleep(0.01)
    assert not third.done()
    assert [m.offset for m in await intake.take(2, within=0.0)] == [0, 1]
    await asyncio.wait_for(third, 1.0)
    assert [m.offset for m in await intake.take(2, within=0.0)] == [2]


async def collect(
    app: Any, intake: Intake, batches: int
) -> list[list[tuple[int, int]]]:
    seen: list[list[tuple[int, int]]] = []
    generator = intake_batches(app, intake)
    async for part in generator:
        # Tracked while applied, acknowledged only when the next one is asked for.
        records = [(r.message.partition, r.message.offset) for r in part]
        assert app.consumer.tracked[-len(records) :] == records
        assert not set(records) & set(app.consumer.acked)
        seen.append(records)
        if len(seen) == batches:
            break
    await generator.aclose()
    return seen


@pytest.fixture(autouse=True)
def short_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "BATCH_WITHIN_S", 0.01)


async def test_batches_split_by_partition_and_acked_after_apply() -> None:
    app = fake_app()
    intake = Intake(app)
    for partition, offsets in ((0, range(3)), (1, range(2))):
        on_message = intake.handler(TP(TOPIC, partition))
        for offset in offsets:
            await on_message(message(offset, partition))
    seen = await collect(app, intake, batches=2)
    assert seen == [[(0, 0), (0, 1), (0, 2)], [(1, 0), (1, 1)]]
    # The first part was acknowledged when the second was asked for.
    assert app.consumer.acked == [(0, 0), (0, 1), (0, 2)]


async def test_records_of_an_earlier_generation_are_dropped_unacked() -> None:
    app = fake_app()
    app.consumer_generation_id = 2
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    await on_message(message(0, generation=1))
    await on_message(message(1, generation=1))
    await on_message(message(0, partition=1, generation=2))
    seen = await collect(app, intake, batches=1)
    assert seen == [[(1, 0)]]
    assert app.consumer.tracked == [(1, 0)]


async def test_nothing_is_applied_during_a_rebalance() -> None:
    app = fake_app()
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    await on_message(message(0))
    app.flow_control.active = False
    generator = intake_batches(app, intake)
    pending = asyncio.ensure_future(generator.__anext__())
    await asyncio.sleep(0.05)
    assert not pending.done()
    pending.cancel()
    assert app.consumer.tracked == []
    assert app.consumer.acked == []


async def test_offer_only_without_a_wait() -> None:
    app = fake_app()
    intake = Intake(app, maxsize=2)
    assert intake.offer(message(0)) is True

    app.flow_control.active = False
    assert intake.offer(message(1)) is False
    app.flow_control.active = True

    app.producer.buffer.size = 101
    assert intake.offer(message(1)) is False
    app.producer.buffer.size = 0

    assert intake.offer(message(1)) is True
    assert intake.offer(message(2)) is False  # full at maxsize 2
    batch = await intake.take(10, within=0.0)
    assert [m.offset for m in batch] == [0, 1]


async def test_clear_drops_untaken_records() -> None:
    app = fake_app()
    intake = Intake(app, maxsize=1)
    assert intake.offer(message(0)) is True
    intake.clear()
    assert len(intake) == 0
    assert intake.offer(message(1)) is True
    assert [m.offset for m in await intake.take(10, within=0.0)] == [1]


async def deferred_batches(app: Any, outcome: str) -> list[tuple[int, int]]:
    """Apply two one-record batches; the first defers its ack to a future."""
    intake = Intake(app)
    on_message = intake.handler(TP(TOPIC, 0))
    await on_message(message(0))
    generator = intake_batches(app, intake)
    await generator.__anext__()
    written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ack_after(written)
    await on_message(message(1))
    await generator.__anext__()  # requests the next batch: the first is not acked yet
    acked_before = list(app.consumer.acked)
    if outcome == "written":
        written.set_result(None)
    else:
        written.set_exception(RuntimeError("write failed"))
    await asyncio.sleep(0)
    await generator.aclose()
    assert acked_before == []
    return app.consumer.acked


async def test_deferred_ack_waits_for_the_future() -> None:
    assert await deferred_batches(fake_app(), "written") == [(0, 0)]


async def test_failed_future_leaves_batch_unacked() -> None:
    assert await deferred_batches(fake_app(), "failed") == []


async def test_ack_after_outside_a_batch_raises() -> None:
    written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(RuntimeError, match="only valid while an agent applies"):
        ack_after(written)
