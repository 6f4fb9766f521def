"""Coalescing and short-term reuse of identical page reads in the feed store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import app.store
from app.settings import Settings
from app.store import MAX_RECENT_PAGES, FeedStore, Page


class GatedStore(FeedStore):
    """A feed store whose page query waits for a gate and counts its calls."""

    def __init__(self, tmp_path: Path, cache_ms: int = 0, stale_ms: int = 0) -> None:
        settings = Settings(
            state_dir=tmp_path, feed_cache_ms=cache_ms, feed_stale_ms=stale_ms
        )
        super().__init__(settings)
        self.gate = asyncio.Event()
        self.queries: list[tuple[dict[str, Any], int, str | None]] = []
        self.error: Exception | None = None

    async def _page(
        self, query: dict[str, Any], limit: int, cursor: str | None
    ) -> Page:
        self.queries.append((query, limit, cursor))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return Page([{"query": query, "limit": limit}], None)


async def test_concurrent_feed_reads_share_query(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    readers = [asyncio.create_task(store.feed(20)) for _ in range(5)]
    await asyncio.sleep(0)
    store.gate.set()
    pages = await asyncio.gather(*readers)

    assert store.queries == [({}, 20, None)]
    assert all(page is pages[0] for page in pages)


async def test_different_pages_query_separately(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    readers = [
        asyncio.create_task(store.feed(20)),
        asyncio.create_task(store.feed(10)),
        asyncio.create_task(store.user_messages("alice", 20)),
    ]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(*readers)

    assert sorted(store.queries, key=repr) == sorted(
        [({}, 20, None), ({}, 10, None), ({"user": "alice"}, 20, None)], key=repr
    )


async def test_read_after_completion_queries_again(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    store.gate.set()
    await store.feed(20)
    await store.feed(20)

    assert len(store.queries) == 2


async def test_cancelled_reader_keeps_shared_query(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    first = asyncio.create_task(store.feed(20))
    second = asyncio.create_task(store.feed(20))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    store.gate.set()

    page = await second

    assert first.cancelled()
    assert page.items == [{"query": {}, "limit": 20}]
    assert len(store.queries) == 1


async def test_failed_query_raises_in_every_reader(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    store.error = RuntimeError("database down")
    readers = [asyncio.create_task(store.feed(20)) for _ in range(3)]
    await asyncio.sleep(0)
    store.gate.set()

    results = await asyncio.gather(*readers, return_exceptions=True)

    assert [str(result) for result in results] == ["database down"] * 3
    assert len(store.queries) == 1
    with pytest.raises(RuntimeError, match="database down"):
        await store.feed(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(app.store.time, "monotonic", fake)
    return fake


async def test_recent_page_reused_until_max_age(tmp_path: Path, clock: Clock) -> None:
    store = GatedStore(tmp_path, cache_ms=25)
    store.gate.set()

    first = await store.feed(20)
    clock.now += 0.020
    reused = await store.feed(20)
    clock.now += 0.010
    fresh = await store.feed(20)

    assert reused is first
    assert fresh is not first
    assert len(store.queries) == 2


async def test_failed_read_not_reused(tmp_path: Path, clock: Clock) -> None:
    store = GatedStore(tmp_path, cache_ms=25)
    store.gate.set()
    store.error = RuntimeError("database down")
    with pytest.raises(RuntimeError):
        await store.feed(20)

    store.error = None
    page = await store.feed(20)

    assert page.items == [{"query": {}, "limit": 20}]
    assert len(store.queries) == 2


async def test_recent_pages_bounded(tmp_path: Path, clock: Clock) -> None:
    store = GatedStore(tmp_path, cache_ms=25)
    store.gate.set()

    for limit in range(1, MAX_RECENT_PAGES + 2):
        await store.feed(limit)
    await store.feed(1)
    await store.feed(MAX_RECENT_PAGES + 1)

    # The page of limit 1 was dropped as the oldest and read again; the
    # newest was still kept.
    assert len(store._recent) == MAX_RECENT_PAGES
    assert len(store.queries) == MAX_RECENT_PAGES + 2
    assert store.queries[-1] == ({}, 1, None)


async def test_stale_page_served_while_refreshing(tmp_path: Path, clock: Clock) -> None:
    store = GatedStore(tmp_path, cache_ms=25, stale_ms=1000)
    store.gate.set()
    first = await store.feed(20)
    store.gate.clear()
    clock.now += 0.5

    served = await store.feed(20)
    await asyncio.sleep(0)
    refreshing = len(store.queries)
    store.gate.set()
    for _ in range(3):
        await asyncio.sleep(0)
    refreshed = await store.feed(20)

    assert served is first
    assert refreshing == 2
    assert refreshed is not first
    assert len(store.queries) == 2


async def test_page_past_stale_limit_waits(tmp_path: Path, clock: Clock) -> None:
    store = GatedStore(tmp_path, cache_ms=25, stale_ms=1000)
    store.gate.set()
    first = await store.feed(20)
    clock.now += 1.0

    fresh = await store.feed(20)

    assert fresh is not first
    assert len(store.queries) == 2


async def test_background_read_error_logged(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = GatedStore(tmp_path, cache_ms=25, stale_ms=1000)
    store.gate.set()
    first = await store.feed(20)
    store.error = RuntimeError("database down")
    clock.now += 0.5

    served = await store.feed(20)
    for _ in range(3):
        await asyncio.sleep(0)

    assert served is first
    assert "feed page read failed" in caplog.text
    assert "database down" in caplog.text
