"""The stall guard seeks back only a partition that is behind and stuck."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from agents.batching import AgentActivity
from agents.guard import StallGuard
from app.metrics import RESEEKED, counters

SOURCE = TopicPartition("t-messages", 0)
OTHER = TopicPartition("t-messages-changelog", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self._committed_offset: dict[TopicPartition, int | None] = {}
        self._read_offset: dict[TopicPartition, int | None] = {}
        self._unacked_messages: list[Any] = []
        self.ends: dict[TopicPartition, int] = {}
        self.sought: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, tp: TopicPartition) -> int:
        return self.ends[tp]

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))


class FakeApp:
    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.rebalancing = False
        self.in_recovery = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_guard() -> tuple[StallGuard, FakeApp, Clock]:
    app: Any = FakeApp()
    clock = Clock()
    agents = AgentActivity(clock=clock)
    guard = StallGuard(
        app, ["t-messages"], stall_after_s=15.0, clock=clock, agents=agents
    )
    app.agents = agents
    return guard, app, clock


async def test_stalled_partition_sought_to_committed() -> None:
    guard, app, clock = make_guard()
    app.consumer.ends = {SOURCE: 24, OTHER: 50}
    app.consumer._committed_offset = {SOURCE: 9, OTHER: 3}
    app.consumer._read_offset = {SOURCE: 23, OTHER: 49}
    before = counters.value(RESEEKED, topic="t-messages")

    assert await guard.check() == []
    clock.now += 10.0
    assert await guard.check() == []
    clock.now += 6.0
    assert await guard.check() == [SOURCE]
    assert app.consumer.sought == [(SOURCE, 9)]
    assert counters.value(RESEEKED, topic="t-messages") == before + 1

    # The next seek of the same offset waits for a full period again.
    clock.now += 10.0
    assert await guard.check() == []
    clock.now += 6.0
    assert await guard.check() == [SOURCE]


async def test_progress_or_rebalance_resets_watch() -> None:
    guard, app, clock = make_guard()
    app.consumer.ends = {SOURCE: 24}
    app.consumer._committed_offset = {SOURCE: 9}
    app.consumer._read_offset = {SOURCE: 23}
    await guard.check()

    clock.now += 16.0
    app.consumer._committed_offset[SOURCE] = 12  # progress
    assert await guard.check() == []

    clock.now += 16.0
    app.rebalancing = True
    assert await guard.check() == []
    app.rebalancing = False
    clock.now += 16.0
    assert await guard.check() == []  # watch restarted after the rebalance

    app.consumer._committed_offset[SOURCE] = 24  # caught up
    clock.now += 30.0
    assert await guard.check() == []
    clock.now += 30.0
    assert await guard.check() == []
    assert app.consumer.sought == []


async def test_uncommitted_partition_sought_to_start() -> None:
    guard, app, clock = make_guard()
    app.consumer.ends = {SOURCE: 5}
    app.consumer._committed_offset = {}
    app.consumer._read_offset = {SOURCE: 4}
    await guard.check()
    clock.now += 20.0
    assert await guard.check() == [SOURCE]
    assert app.consumer.sought == [(SOURCE, 0)]


async def test_busy_or_waiting_is_not_stall() -> None:
    guard, app, clock = make_guard()
    app.consumer.ends = {SOURCE: 5000}
    app.consumer._committed_offset = {SOURCE: 100}
    app.consumer._read_offset = {SOURCE: 4999}
    # The agent works through a backlog of other partitions.
    for _ in range(5):
        app.agents.begin("t-messages")
        clock.now += 20.0
        assert await guard.check() == []
        app.agents.end("t-messages")

    # The agent is idle, but one record of the partition waits for it.
    app.consumer._unacked_messages = [SimpleNamespace(tp=SOURCE)]
    for _ in range(5):
        clock.now += 20.0
        assert await guard.check() == []
    assert app.consumer.sought == []

    # Idle, but records up to the end are not handed on yet: the fetch loop
    # waits on another topic's full buffer.
    app.consumer._unacked_messages = []
    app.consumer._read_offset = {SOURCE: 3000}
    for _ in range(5):
        clock.now += 20.0
        assert await guard.check() == []

    # None of these: the partition is stalled.
    app.consumer._read_offset = {SOURCE: 4999}
    clock.now += 20.0
    assert await guard.check() == [SOURCE]


async def test_partition_without_read_offset_sought() -> None:
    # Records fetched before a rebalance were dropped, and nothing was
    # committed, so Faust's own seek left no read offset.
    guard, app, clock = make_guard()
    app.consumer.ends = {SOURCE: 24}
    app.consumer._committed_offset = {SOURCE: None}
    app.consumer._read_offset = {SOURCE: None}
    await guard.check()
    clock.now += 20.0
    assert await guard.check() == [SOURCE]
    assert app.consumer.sought == [(SOURCE, 0)]
