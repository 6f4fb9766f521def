"""The continuity check of source partitions, on made-up records and a fake clock."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP as TopicPartition

from agents.continuity import MAX_SEEKS, RESEEK_AFTER_S, OffsetContinuity

TP = TopicPartition("views", 1)
OTHER_TP = TopicPartition("views", 2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(*offsets: int, tp: Any = TP) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(tp=tp, offset=o)) for o in offsets]


def offsets(admitted: Any) -> list[int]:
    return [record.message.offset for record in admitted.records]


def test_contiguous_records_all_admitted() -> None:
    check = OffsetContinuity()

    first = check.admit(records(5, 6, 7), generation=1, committed=5)
    second = check.admit(records(8, 9), generation=1, committed=5)

    assert offsets(first) == [5, 6, 7]
    assert first.seek_to is None
    assert offsets(second) == [8, 9]
    assert second.seek_to is None


def test_start_past_committed_seeks_back() -> None:
    check = OffsetContinuity()

    admitted = check.admit(records(9, 10), generation=1, committed=5)

    assert offsets(admitted) == []
    assert admitted.seek_to == 5


def test_gap_inside_batch_cuts_it() -> None:
    check = OffsetContinuity()

    admitted = check.admit(records(5, 6, 9, 10), generation=1, committed=5)

    assert offsets(admitted) == [5, 6]
    assert admitted.seek_to == 7


def test_records_after_gap_dropped_until_reread() -> None:
    check = OffsetContinuity()
    check.admit(records(5, 6, 9), generation=1, committed=5)

    stale = check.admit(records(10, 11), generation=1, committed=5)
    reread = check.admit(records(7, 8, 9, 10, 11, 12), generation=1, committed=5)

    assert offsets(stale) == []
    assert stale.seek_to is None
    assert offsets(reread) == [7, 8, 9, 10, 11, 12]
    assert reread.seek_to is None


def test_redelivery_below_expected_admitted() -> None:
    check = OffsetContinuity()
    check.admit(records(5, 6, 7), generation=1, committed=5)

    admitted = check.admit(records(6, 7, 8), generation=1, committed=5)

    assert offsets(admitted) == [6, 7, 8]
    assert admitted.seek_to is None


def test_unknown_committed_accepts_first() -> None:
    check = OffsetContinuity()

    admitted = check.admit(records(40, 41), generation=1, committed=None)

    assert offsets(admitted) == [40, 41]
    assert admitted.seek_to is None


def test_new_generation_restarts_at_committed() -> None:
    check = OffsetContinuity()
    check.admit(records(5, 6), generation=1, committed=5)

    resumed = check.admit(records(20, 21), generation=2, committed=20)
    skipped = check.admit(records(30), generation=3, committed=25)

    assert offsets(resumed) == [20, 21]
    assert resumed.seek_to is None
    assert offsets(skipped) == []
    assert skipped.seek_to == 25


def test_partitions_checked_apart() -> None:
    check = OffsetContinuity()
    check.admit(records(5, 6, 9), generation=1, committed=5)

    other = check.admit(records(50, 51, tp=OTHER_TP), generation=1, committed=50)

    assert offsets(other) == [50, 51]
    assert other.seek_to is None


def test_missing_offset_sought_again_then_accepted() -> None:
    clock = Clock()
    check = OffsetContinuity(clock=clock)
    first = check.admit(records(5, 9), generation=1, committed=5)
    assert first.seek_to == 6

    seeks = [first.seek_to]
    for _ in range(MAX_SEEKS - 1):
        clock.now += RESEEK_AFTER_S
        seeks.append(check.admit(records(10), generation=1, committed=5).seek_to)
    clock.now += RESEEK_AFTER_S
    accepted = check.admit(records(11, 12), generation=1, committed=5)

    assert seeks == [6] * MAX_SEEKS
    assert offsets(accepted) == [11, 12]
    assert accepted.seek_to is None


def test_stale_record_before_reseek_time_dropped() -> None:
    clock = Clock()
    check = OffsetContinuity(clock=clock)
    check.admit(records(5, 9), generation=1, committed=5)
    clock.now += RESEEK_AFTER_S / 2

    admitted = check.admit(records(10), generation=1, committed=5)

    assert offsets(admitted) == []
    assert admitted.seek_to is None
