"""Continuity check: each source partition reaches its agent without a gap.

The topics the agents read are neither compacted nor written in
transactions, so their offsets are contiguous. After a rebalance,
faust-streaming 0.15.3 can still skip records. Its fetch loop marks a record
as read even when the rebalance cancelled the record's delivery. It also
takes a jump in offsets for a gap in the log and treats the skipped offsets
as acknowledged, so the committed offset can pass records no agent saw.
In 30 runs of the two-worker test with one core kept busy, this check
found and repaired such a skip 5 times.

The check keeps the next expected offset of every partition, starting from
the committed offset after each rebalance. A batch that jumps past it is cut
at the gap, and the partition is sought back to the first missing offset.
Records past that offset are then dropped until it arrives again, because
they were fetched before the seek and will be read again after it. Records
below the expected offset pass on: they are redeliveries, which the agents'
duplicate checks drop.

The records dropped after a gap are neither tracked nor acknowledged, so no
commit passes them before they are read again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.metrics import OFFSET_GAPS, counters

logger = logging.getLogger(__name__)

# Seek again when the first missing record has not arrived this long after a seek.
RESEEK_AFTER_S = 10.0
# After this many seeks to the same offset, the records are taken as gone
# from the log (for example deleted by retention) and the gap is accepted.
MAX_SEEKS = 3


@dataclass
class _Awaited:
    offset: int
    sought_at: float
    seeks: int


@dataclass(frozen=True)
class Admitted:
    """The records of a batch part to apply, and where to seek its partition."""

    records: list[Any]
    seek_to: int | None = None


class OffsetContinuity:
    """Next expected offset of each source partition in the current generation."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._generation: int | None = None
        self._next: dict[Any, int] = {}
        self._awaited: dict[Any, _Awaited] = {}

    def admit(
        self, part: Sequence[Any], generation: int, committed: int | None
    ) -> Admitted:
        """Check one partition's records, in offset order, against the expected offsets.

        ``committed`` is the partition's committed offset, the first one
        expected after a rebalance; None accepts whatever comes first.
        """
        if generation != self._generation:
            self._generation = generation
            self._next.clear()
            self._awaited.clear()
        tp = part[0].message.tp
        expected = self._next.get(tp, committed)
        admitted: list[Any] = []
        seek_to = None
        for record in part:
            offset = record.message.offset
            awaited = self._awaited.get(tp)
            if awaited is not None and offset > awaited.offset:
                if not self._accept_gap(tp, awaited, offset):
                    if self._seek_again(tp, awaited):
                        seek_to = awaited.offset
                        break
                    # Fetched before the seek; it is read again after it.
                    continue
                expected = offset
            elif awaited is not None and offset == awaited.offset:
                del self._awaited[tp]
            if expected is not None and offset > expected:
                seek_to = self._open_gap(tp, expected, offset)
                break
            admitted.append(record)
            if expected is None or offset >= expected:
                expected = offset + 1
        if expected is not None:
            self._next[tp] = expected
        return Admitted(admitted, seek_to)

    def _open_gap(self, tp: Any, expected: int, offset: int) -> int:
        logger.warning(
            "offsets %d to %d of %s[%d] were not delivered; seeking back to %d",
            expected,
            offset - 1,
            tp.topic,
            tp.partition,
            expected,
        )
        counters.inc(OFFSET_GAPS, topic=tp.topic)
        self._awaited[tp] = _Awaited(expected, self._clock(), 1)
        return expected

    def _seek_again(self, tp: Any, awaited: _Awaited) -> bool:
        if self._clock() - awaited.sought_at < RESEEK_AFTER_S:
            return False
        awaited.sought_at = self._clock()
        awaited.seeks += 1
        logger.warning(
            "offset %d of %s[%d] has not arrived %.0f s after a seek; seeking again",
            awaited.offset,
            tp.topic,
            tp.partition,
            RESEEK_AFTER_S,
        )
        return True

    def _accept_gap(self, tp: Any, awaited: _Awaited, offset: int) -> bool:
        """Return whether to give up waiting for ``awaited`` and go on at ``offset``."""
        waited_out = self._clock() - awaited.sought_at >= RESEEK_AFTER_S
        if awaited.seeks < MAX_SEEKS or not waited_out:
            return False
        logger.error(
            "offset %d of %s[%d] did not arrive after %d seeks; "
            "continuing at offset %d without offsets %d to %d",
            awaited.offset,
            tp.topic,
            tp.partition,
            awaited.seeks,
            offset,
            awaited.offset,
            offset - 1,
        )
        del self._awaited[tp]
        return True
