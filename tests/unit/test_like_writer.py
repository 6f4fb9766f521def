"""The like-count writer: order, coalescing, retries and back-pressure."""

from __future__ import annotations

import asyncio

import pytest

import agents.like_writer as like_writer_module
from agents.like_writer import LikeCountWriter
from app.metrics import LIKE_COUNT_WRITE_FAILURES, counters


class SlowStore:
    """A store that records each write. A write waits until the test releases it."""

    def __init__(self, failures: int = 0) -> None:
        self.writes: list[dict[str, int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failures = failures

    async def set_like_counts(self, counts: dict[str, int]) -> None:
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server selection timed out")
        self.writes.append(dict(counts))


async def test_newest_count_per_message_wins() -> None:
    store = SlowStore()
    store.release.clear()
    writer = LikeCountWriter(store)
    first = await writer.submit({"a": 1})
    await asyncio.sleep(0)  # the first write starts and waits for the release
    second = await writer.submit({"a": 2, "b": 1})
    third = await writer.submit({"a": 3})
    store.release.set()
    await asyncio.wait_for(asyncio.gather(first, second, third), 1.0)
    assert store.writes == [{"a": 1}, {"a": 3, "b": 1}]


async def test_future_done_after_write() -> None:
    store = SlowStore()
    store.release.clear()
    writer = LikeCountWriter(store)
    written = await writer.submit({"a": 1})
    await asyncio.sleep(0.01)
    assert not written.done()
    store.release.set()
    await asyncio.wait_for(written, 1.0)
    assert store.writes == [{"a": 1}]


async def test_failed_write_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(like_writer_module, "RETRY_DELAYS_S", (0.0,))
    before = counters.value(LIKE_COUNT_WRITE_FAILURES)
    store = SlowStore(failures=2)
    writer = LikeCountWriter(store)
    await asyncio.wait_for(await writer.submit({"a": 1}), 1.0)
    assert store.writes == [{"a": 1}]
    assert counters.value(LIKE_COUNT_WRITE_FAILURES) == before + 2


async def test_submit_waits_when_full() -> None:
    store = SlowStore()
    store.release.clear()
    writer = LikeCountWriter(store, max_waiting=1)
    await writer.submit({"a": 1})
    await asyncio.sleep(0)  # the first write takes its batch: room for one more
    await writer.submit({"b": 1})
    third = asyncio.ensure_future(writer.submit({"c": 1}))
    await asyncio.sleep(0.01)
    assert not third.done()
    store.release.set()
    await asyncio.wait_for(await asyncio.wait_for(third, 1.0), 1.0)
    assert store.writes[0] == {"a": 1}
    assert {"b": 1, "c": 1} == {k: v for w in store.writes[1:] for k, v in w.items()}
