"""Random shapes of simulated traffic: time of day, popularity and durations."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence

from simulator.records import MICROS_PER_DAY

VIEW_MAX_DURATION_MS = 3_600_000

# Activity by UTC hour: a floor all night, a bump at lunch time and a higher
# bump in the evening. Each bump is (peak hour, width in hours, height).
_NIGHT_FLOOR = 0.15
_BUMPS = ((12.5, 2.5, 0.6), (20.5, 2.5, 1.0))
# An upper bound of diurnal_weight, for rejection sampling. Summing every
# height bounds the curve even where the bumps overlap.
_WEIGHT_BOUND = _NIGHT_FLOOR + sum(height for _, _, height in _BUMPS)


def diurnal_weight(hour: float) -> float:
    """Return the relative activity at ``hour`` (0 to 24, UTC) of any day."""
    weight = _NIGHT_FLOOR
    for peak, width, height in _BUMPS:
        distance = abs(hour - peak)
        distance = min(distance, 24.0 - distance)
        weight += height * math.exp(-0.5 * (distance / width) ** 2)
    return weight


def diurnal_offset(rng: random.Random) -> int:
    """Draw a time of day in microseconds after midnight, following the curve."""
    while True:
        offset = rng.randrange(MICROS_PER_DAY)
        hour = offset / (MICROS_PER_DAY / 24)
        if rng.random() * _WEIGHT_BOUND < diurnal_weight(hour):
            return offset


def zipf_weights(rng: random.Random, count: int, exponent: float) -> list[float]:
    """Return popularity weights 1 / rank**exponent, with ranks in random order."""
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    return [rank**-exponent for rank in ranks]


class WeightedPicker:
    """Weighted choice among the first k items of a fixed sequence.

    The simulator keeps messages in order of creation, so the first k
    messages are those that exist at a given time.
    """

    def __init__(self, weights: Sequence[float]) -> None:
        self._cumulative = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random, available: int | None = None) -> int:
        """Return the index of an item among the first ``available`` items."""
        count = len(self._cumulative) if available is None else available
        if count <= 0:
            raise ValueError("no items to pick from")
        target = rng.random() * self._cumulative[count - 1]
        index = bisect.bisect_right(self._cumulative, target, hi=count - 1)
        return index


def view_duration_ms(rng: random.Random, median_ms: float, sigma: float) -> int:
    """Draw a log-normal view duration, clipped to 1 ms .. one hour."""
    duration = rng.lognormvariate(math.log(median_ms), sigma)
    return min(VIEW_MAX_DURATION_MS, max(1, round(duration)))


def geometric_count(rng: random.Random, mean: float, limit: int = 100) -> int:
    """Draw a count of at least 1 with the given mean, from a geometric law."""
    if mean <= 1:
        return 1
    repeat = 1 - 1 / mean
    count = 1
    while count < limit and rng.random() < repeat:
        count += 1
    return count
