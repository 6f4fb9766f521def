"""The producer buffer's flush against a Kafka client stand-in that sends on demand."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from app.producer_buffer import DrainingProducerBuffer


class GatedChannel:
    """Publishes one record each time ``release`` is called."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self._permits = asyncio.Semaphore(0)

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._permits.release()

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await self._permits.acquire()
        self.published.append(fut.name)


def record(channel: GatedChannel, name: str) -> Any:
    return SimpleNamespace(name=name, message=SimpleNamespace(channel=channel))


@pytest.fixture
async def buffer() -> Any:
    buffer = DrainingProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    await buffer.start()
    yield buffer
    await buffer.stop()


async def test_flush_waits_for_every_earlier_record(buffer: Any) -> None:
    channel = GatedChannel()
    for name in ("a", "b", "c"):
        buffer.put(record(channel, name))
    flush = asyncio.create_task(buffer.flush())

    channel.release(2)
    await asyncio.sleep(0.3)
    assert not flush.done()

    channel.release(1)
    await asyncio.wait_for(flush, 2.0)
    assert channel.published == ["a", "b", "c"]


async def test_flush_ignores_records_put_after_it(buffer: Any) -> None:
    channel = GatedChannel()
    buffer.put(record(channel, "before"))
    flush = asyncio.create_task(buffer.flush())
    await asyncio.sleep(0)
    buffer.put(record(channel, "after"))

    channel.release(1)
    await asyncio.wait_for(flush, 2.0)

    assert channel.published == ["before"]
    assert buffer.size == 0
    assert buffer.sends_started == 2
    channel.release(1)
    await asyncio.wait_for(buffer.flush(), 2.0)
    assert channel.published == ["before", "after"]


async def test_flush_of_empty_buffer_returns(buffer: Any) -> None:
    await asyncio.wait_for(buffer.flush(), 1.0)

    assert buffer.sends_finished == 0
