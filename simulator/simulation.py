"""One simulation: the generated records and the truth they imply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from simulator.config import SimulationConfig
from simulator.corpus import load_bodies
from simulator.generator import Plan, generate
from simulator.records import Record
from simulator.truth import compute_truth


@dataclass(frozen=True, slots=True)
class Simulation:
    """Generated traffic in send order, and its truth document."""

    config: SimulationConfig
    plan: Plan
    truth: dict[str, Any]

    @property
    def events(self) -> list[Record]:
        """Return every record, valid or not, in send order."""
        return self.plan.records


def simulate(config: SimulationConfig, today: date | None = None) -> Simulation:
    """Validate ``config``, generate its records and compute their truth.

    ``today`` is the UTC day the retention period ends on; it defaults to
    the current day.
    """
    today = today or datetime.now(UTC).date()
    config.validate(today)
    start = config.resolved_start(today)
    plan = generate(config, load_bodies(config.corpus), start)
    truth = compute_truth(
        plan.records,
        retention_days=config.retention_days,
        days=plan.days,
        users=plan.users,
        config=config.to_json() | {"start": start.isoformat()},
    )
    return Simulation(config, plan, truth)
