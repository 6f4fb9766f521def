"""Like counts written to MongoDB behind the agents, newest count per message.

The like agent used to wait for each batch's like counts to reach MongoDB
before it took the next batch. On FerretDB an update by ``_id`` scans the
collection, so a like arriving during a slow update waited for it before it
reached the tables. Now the agents hand each batch's counts to one
:class:`LikeCountWriter` per worker and go on; the batch's records are
acknowledged only once its counts are written (see
:func:`agents.batching.ack_after`), so a crash still reads them again.

The writer keeps one pending count per message. The counts are absolute
values read from the tables, so a later count replaces an earlier one, and
while one write runs the next batches' counts gather into the next. The like
agent and the message agent (for parked likes) share the writer, so their
counts for one message reach MongoDB in the order they were taken from the
tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from app.metrics import LIKE_COUNT_WRITE_FAILURES, counters

logger = logging.getLogger(__name__)

# Batches whose counts may wait for a write before the agents wait too.
MAX_WAITING_BATCHES = 64
RETRY_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)

# Key in Pipeline.extras of the worker's writer.
LIKE_WRITER = "like_writer"


class LikeCountWriter:
    """Writes like counts to the feed store in the background, in order."""

    def __init__(self, store: Any, max_waiting: int = MAX_WAITING_BATCHES) -> None:
        self._store = store
        self._max_waiting = max_waiting
        self._pending: dict[str, int] = {}
        self._waiting: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, counts: Mapping[str, int]) -> asyncio.Future[None]:
        """Queue ``counts``; return a future that completes once they are written.

        Waits first while ``max_waiting`` earlier submissions are not written.
        """
        while len(self._waiting) >= self._max_waiting:
            self._room.clear()
            await self._room.wait()
        self._pending.update(counts)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(written)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="like-count-writer")
        return written

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._waiting:
                continue
            counts, self._pending = self._pending, {}
            waiting, self._waiting = self._waiting, []
            self._room.set()
            try:
                await self._write(counts)
            except asyncio.CancelledError:
                for written in waiting:
                    written.cancel()
                raise
            for written in waiting:
                if not written.done():
                    written.set_result(None)

    async def _write(self, counts: dict[str, int]) -> None:
        """Write ``counts``, retrying until the write succeeds.

        Meanwhile the batches behind these counts stay unacknowledged.
        """
        attempt = 0
        while True:
            try:
                await self._store.set_like_counts(counts)
                return
            except Exception as error:  # noqa: BLE001 - logged and retried
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                counters.inc(LIKE_COUNT_WRITE_FAILURES)
                logger.warning(
                    "writing %d like counts to MongoDB failed (attempt %d), "
                    "retrying in %.1f s: %r",
                    len(counts),
                    attempt,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)


def like_writer(pipeline: Any) -> LikeCountWriter:
    """Return the pipeline's :class:`LikeCountWriter`, created on first use."""
    writer: LikeCountWriter | None = pipeline.extras.get(LIKE_WRITER)
    if writer is None:
        writer = LikeCountWriter(pipeline.store)
        pipeline.extras[LIKE_WRITER] = writer
    return writer
