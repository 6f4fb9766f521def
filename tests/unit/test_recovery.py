"""Which changelog records the batched recovery writes, and with which offsets."""

from __future__ import annotations

from collections import Counter, defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from tables.recovery import BulkRecovery

ACTIVE = TP("app-days-changelog", 0)
STANDBY = TP("app-days-changelog", 1)
OTHER_TABLE = TP("app-user-days-changelog", 0)
UNASSIGNED = TP("app-days-changelog", 2)


class FakeTable:
    def __init__(self) -> None:
        self.written: list[tuple[TP, int, bytes | None]] = []

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        self.written += [
            (r.message.tp, r.message.offset, r.message.value) for r in batch
        ]


def record(tp: TP, offset: int, value: bytes | None = b"1") -> Any:
    return SimpleNamespace(tp=tp, offset=offset, key=b"k", value=value)


def recovery(days: FakeTable, user_days: FakeTable) -> Any:
    return SimpleNamespace(
        active_tps={ACTIVE, OTHER_TABLE},
        standby_tps={STANDBY},
        tp_to_table={ACTIVE: days, STANDBY: days, OTHER_TABLE: user_days},
        active_offsets=Counter({ACTIVE: 4, OTHER_TABLE: -1}),
        standby_offsets=Counter(),
        buffers=defaultdict(list),
        _active_events_received_at={},
        _standby_events_received_at={},
        _last_flush_at=None,
    )


def test_apply_batch_skips_old_records() -> None:
    days, user_days = FakeTable(), FakeTable()
    state = recovery(days, user_days)
    BulkRecovery.apply_batch(
        state,
        [
            record(ACTIVE, 3),  # at or below the applied offset 4: skipped
            record(ACTIVE, 4),
            record(ACTIVE, 5),
            record(UNASSIGNED, 9),  # neither active nor standby: skipped
            record(STANDBY, 0),
            record(OTHER_TABLE, 0, value=None),  # a deletion is written too
            record(ACTIVE, 5),  # a second copy of offset 5: skipped
            record(ACTIVE, 7),
        ],
    )
    assert days.written == [
        (ACTIVE, 5, b"1"),
        (STANDBY, 0, b"1"),
        (ACTIVE, 7, b"1"),
    ]
    assert user_days.written == [(OTHER_TABLE, 0, None)]
    assert state.active_offsets == Counter({ACTIVE: 7, OTHER_TABLE: 0})
    assert state.standby_offsets == Counter({STANDBY: 0})
    assert all(not buffer for buffer in state.buffers.values())
    assert set(state._active_events_received_at) == {ACTIVE, OTHER_TABLE}


def test_empty_batch_writes_nothing() -> None:
    days, user_days = FakeTable(), FakeTable()
    state = recovery(days, user_days)
    BulkRecovery.apply_batch(state, [])
    assert days.written == []
    assert user_days.written == []
    assert state._last_flush_at is None
