"""Pacing, progress and rate reports shared by the Kafka and HTTP senders."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from simulator.records import MICROS_PER_SECOND, TOPICS, Record


class Pacer:
    """Map simulated send times onto wall-clock time.

    With ``duration_s`` the whole simulated span is spread over that many
    seconds. With ``speed`` one wall second covers ``speed`` simulated
    seconds. With neither, or a duration of 0, records go out as fast as
    the sender can send them.
    """

    def __init__(
        self,
        first_at: int,
        last_at: int,
        *,
        duration_s: float = 0.0,
        speed: float | None = None,
    ) -> None:
        if duration_s < 0:
            raise ValueError(f"duration_s must not be negative, got {duration_s}")
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be greater than 0, got {speed}")
        self.first = first_at
        span_us = last_at - first_at
        self.scale = 0.0
        if speed is not None:
            self.scale = 1 / (speed * MICROS_PER_SECOND)
        elif duration_s > 0 and span_us > 0:
            self.scale = duration_s / span_us
        self.started = time.monotonic()

    @classmethod
    def for_records(
        cls,
        records: Sequence[Record],
        *,
        duration_s: float = 0.0,
        speed: float | None = None,
    ) -> Pacer:
        """Build a pacer over the send times of ``records``, which are sorted."""
        if not records:
            return cls(0, 0, duration_s=duration_s, speed=speed)
        first, last = records[0].send_at, records[-1].send_at
        return cls(first, last, duration_s=duration_s, speed=speed)

    @property
    def paced(self) -> bool:
        return self.scale > 0

    def start(self) -> None:
        self.started = time.monotonic()

    def offset_s(self, send_at: int) -> float:
        """Return when a record is due, in seconds after ``start``."""
        return (send_at - self.first) * self.scale

    async def wait_for(self, send_at: int) -> None:
        """Sleep until the record is due; return at once when unpaced."""
        if not self.paced:
            return
        delay = self.started + self.offset_s(send_at) - time.monotonic()
        if delay > 0.002:
            await asyncio.sleep(delay)


@dataclass(slots=True)
class SendReport:
    """Records sent per topic and the wall time the sending took."""

    via: str
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def rate(self, topic: str) -> float:
        """Return the records per second achieved on ``topic``."""
        if self.elapsed_s <= 0:
            return 0.0
        return self.sent[topic] / self.elapsed_s

    def summary(self) -> str:
        total = sum(self.sent.values())
        lines = [
            f"sent {total} records via {self.via} in {self.elapsed_s:.2f} s "
            f"({total / self.elapsed_s if self.elapsed_s else 0.0:.0f}/s)"
        ]
        for topic in TOPICS:
            line = (
                f"  {topic:<8} {self.sent[topic]:>8} records "
                f"{self.rate(topic):>10.1f}/s"
            )
            if self.failed[topic]:
                line += f", {self.failed[topic]} failed"
            lines.append(line)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "elapsed_s": round(self.elapsed_s, 3),
            "sent": {topic: self.sent[topic] for topic in TOPICS},
            "failed": {topic: self.failed[topic] for topic in TOPICS},
            "rate_per_s": {topic: round(self.rate(topic), 1) for topic in TOPICS},
        }


def progress_bar(total: int, enabled: bool, unit: str = "record") -> tqdm[Any]:
    return tqdm(
        total=total,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.5,
    )
