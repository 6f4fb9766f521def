"""Process-local counters, exposed at ``GET /metrics`` in Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable


class Counters:
    """Named counters with label values, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._help: dict[str, str] = {}

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] += amount

    def value(self, name: str, **labels: str) -> int:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            return self._values[key]

    def render(self) -> str:
        """Return every counter in the Prometheus text exposition format."""
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        for name in sorted({name for (name, _), _ in items}):
            lines.append(f"# HELP {name} {self._help.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for (item_name, labels), value in items:
                if item_name == name:
                    lines.append(f"{name}{_format_labels(labels)} {value}")
        return "\n".join(lines) + "\n"


def _format_labels(labels: Iterable[tuple[str, str]]) -> str:
    pairs = [f'{key}="{value}"' for key, value in labels]
    return "{" + ",".join(pairs) + "}" if pairs else ""


REJECTED = "socialstream_rejected_events_total"
DUPLICATES = "socialstream_duplicate_events_total"
APPLIED = "socialstream_applied_events_total"
PARKED = "socialstream_parked_likes_total"
UNPARKED = "socialstream_unparked_likes_total"
RESEEKED = "socialstream_reseeked_partitions_total"
REDELIVERED = "socialstream_redelivered_records_total"
OFFSET_GAPS = "socialstream_offset_gaps_total"
LIKE_COUNT_WRITE_FAILURES = "socialstream_like_count_write_failures_total"

counters = Counters()
counters.describe(
    REJECTED, "Events rejected by the API or sent to the dead-letter topic."
)
counters.describe(
    DUPLICATES, "Events ignored because their event id was already applied."
)
counters.describe(APPLIED, "Events applied by the agents.")
counters.describe(
    LIKE_COUNT_WRITE_FAILURES, "Failed writes of like counts to MongoDB, retried."
)
counters.describe(PARKED, "Likes parked because their message had not arrived.")
counters.describe(UNPARKED, "Parked likes applied or dead-lettered since.")
counters.describe(REDELIVERED, "Records skipped because Kafka delivered them again.")
counters.describe(
    OFFSET_GAPS,
    "Gaps in a source partition's offsets, each re-read from the first missing one.",
)
counters.describe(
    RESEEKED, "Stalled source partitions sought back to their committed offset."
)


class LagRecorder:
    """Reservoir of processing lags in milliseconds, for percentiles.

    Keeps a uniform sample of at most ``capacity`` values (Vitter's
    algorithm R), so memory stays bounded however many events pass.
    """

    def __init__(self, capacity: int = 50_000, seed: int = 0) -> None:
        import random

        self._capacity = capacity
        self._values: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)  # noqa: S311 - sampling, not secrets
        self._lock = threading.Lock()

    def record(self, lag_ms: float) -> None:
        with self._lock:
            self._seen += 1
            if len(self._values) < self._capacity:
                self._values.append(lag_ms)
                return
            slot = self._random.randrange(self._seen)
            if slot < self._capacity:
                self._values[slot] = lag_ms

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
            self._seen = 0

    def summary(self) -> dict[str, float | int]:
        """Return the count seen and the p50, p90, p99 and max of the sample."""
        with self._lock:
            values = sorted(self._values)
            seen = self._seen
        if not values:
            return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
        return {
            "count": seen,
            "p50": _percentile(values, 0.50),
            "p90": _percentile(values, 0.90),
            "p99": _percentile(values, 0.99),
            "max": values[-1],
        }


def _percentile(ordered: list[float], fraction: float) -> float:
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index], 3)


# From a record's Kafka timestamp (the producer's send time) to the moment its
# agent applied it. For rollups the start is the delta's oldest source record.
applied_lag = LagRecorder()
rollup_lag = LagRecorder(seed=1)
