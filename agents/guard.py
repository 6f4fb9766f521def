"""Stall guard: seeks back a source partition that Faust stopped delivering.

After a rebalance, faust-streaming 0.15.3 can keep a partition assigned to a
worker and never deliver some of its records. Two paths in its code can lose
them without acknowledging them: the fetch loop drops every record below the
partition's read offset, and a stream skips records fetched in an earlier
consumer generation. Faust commits only up to the first offset that was not
acknowledged, so the committed offset then stays behind the end for good.
This was seen with two workers under CPU load, at about one run in ten.

The guard checks the agents' source partitions every ``CHECK_S`` seconds.
A partition is stalled when, for ``STALL_AFTER_S`` and while no rebalance or
recovery ran, its committed offset stayed below its end offset although:

* Faust's fetch loop has handed on every record up to the end (its read
  offset is the last one, or there is none since the last seek), so the
  records are not queued behind another topic's full buffer;
* no record of the partition waits for its agent;
* the agent has had no batch to work on, so it is not busy with a backlog.

A stalled partition is sought back to its committed offset, which also
resets Faust's read offset. Records read a second time are dropped by the
agents' duplicate checks (offsets and event ids), so nothing is counted
twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agents.batching import AgentActivity, activity
from agents.intake import waiting_partitions
from app.metrics import RESEEKED, counters

logger = logging.getLogger(__name__)

CHECK_S = 5.0
STALL_AFTER_S = 15.0


@dataclass
class _Watch:
    committed: int | None
    since: float


class StallGuard:
    """Tracks committed offsets per partition and seeks back stalled ones."""

    def __init__(
        self,
        app: Any,
        topics: Iterable[str],
        stall_after_s: float = STALL_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        agents: AgentActivity = activity,
    ) -> None:
        self._app = app
        self._agents = agents
        self._topics = frozenset(topics)
        self._stall_after_s = stall_after_s
        self._clock = clock
        self._watches: dict[Any, _Watch] = {}

    async def check(self) -> list[Any]:
        """Check every assigned source partition; return those sought back."""
        app = self._app
        if app.rebalancing or app.in_recovery:
            # Recovery seeks every partition to its committed offset itself.
            self._watches.clear()
            return []
        consumer = app.consumer
        now = self._clock()
        assigned = {tp for tp in consumer.assignment() if tp.topic in self._topics}
        for tp in set(self._watches) - assigned:
            del self._watches[tp]

        sought = []
        # Faust keeps these three only in private attributes.
        waiting = {message.tp for message in list(consumer._unacked_messages)}
        waiting |= waiting_partitions(app)
        for tp in sorted(assigned):
            committed = consumer._committed_offset.get(tp)
            read = consumer._read_offset.get(tp)
            end = consumer.highwater(tp)

            watch = self._watches.get(tp)
            behind = end is not None and end > (committed or 0)
            if not behind or watch is None or watch.committed != committed:
                self._watches[tp] = _Watch(committed, now)
                continue
            if now - watch.since < self._stall_after_s or tp in waiting:
                continue
            # No read offset: nothing was handed on since the last seek. That
            # is the case when records fetched before a rebalance were dropped
            # and the partition had no committed offset to seek back to.
            if read is not None and read + 1 < end:
                continue
            idle_since = self._agents.idle_since(tp.topic)
            if idle_since is None or now - idle_since < self._stall_after_s:
                continue

            offset = committed or 0
            logger.warning(
                "partition %s[%d] made no progress for %.0f s at offset %d of %d; "
                "seeking back to re-read it",
                tp.topic,
                tp.partition,
                now - watch.since,
                offset,
                end,
            )
            await consumer.seek(tp, offset)
            counters.inc(RESEEKED, topic=tp.topic)
            self._watches[tp] = _Watch(committed, now)
            sought.append(tp)
        return sought
