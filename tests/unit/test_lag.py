"""Waiting for zero consumer lag, with the broker calls replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, IllegalStateError

import app.lag as lag_module
from app.settings import Settings


def scripted_lag(monkeypatch: pytest.MonkeyPatch, *outcomes: Any) -> list[str]:
    """Make group_lag return or raise each outcome in turn; return the calls."""
    calls: list[str] = []
    remaining = list(outcomes)

    async def fake_group_lag(settings: Settings, group: str, topics: Any) -> Any:
        calls.append(group)
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(lag_module, "group_lag", fake_group_lag)
    return calls


async def test_coordinator_unavailable_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = scripted_lag(
        monkeypatch,
        GroupCoordinatorNotAvailableError(),
        {"views": 0},
        {"views": 0},
    )

    lag = await lag_module.wait_for_zero_lag(
        Settings(state_dir=tmp_path), timeout_s=5, poll_s=0
    )

    assert lag == {"views": 0}
    assert len(calls) == 3


async def test_non_retriable_error_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scripted_lag(monkeypatch, IllegalStateError())

    with pytest.raises(IllegalStateError):
        await lag_module.wait_for_zero_lag(
            Settings(state_dir=tmp_path), timeout_s=5, poll_s=0
        )
