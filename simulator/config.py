"""Parameters of one simulation run."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# A user name is the prefix plus a number of up to 8 digits, and the event
# contract allows 64 characters of this set.
_USER_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.@-]{0,56}$")
MAX_USERS = 99_999_999


class ConfigError(ValueError):
    """A simulation parameter is out of range."""


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Shape of the simulated traffic. The same config always yields the same records.

    ``start`` is the first simulated UTC day; None means today minus
    ``days - 1``, so that the last simulated day is today. Shares are
    fractions of the valid records.
    """

    seed: int = 0
    users: int = 50
    days: int = 3
    messages_per_day: int = 200
    start: date | None = None
    user_prefix: str = "user-"
    # Mean number of like interactions (a like, an unlike or a short
    # sequence of both by one user) per message.
    likes_per_message: float = 3.0
    # Mean number of view sessions each user opens per day.
    sessions_per_user_per_day: float = 4.0
    # Mean number of messages viewed in one session.
    views_per_session: float = 4.0
    # Exponent s of the popularity weight 1 / rank**s of a message.
    zipf_exponent: float = 1.1
    # Median and log-space spread of a view's duration_ms.
    view_median_ms: float = 6_000.0
    view_sigma: float = 1.3
    # Share of view sessions reported hours after they happened.
    late_view_share: float = 0.05
    # Share of view sessions whose client clock runs up to 4 minutes ahead,
    # so started_at is after occurred_at but still inside the 5-minute limit.
    skewed_view_share: float = 0.02
    invalid_share: float = 0.01
    duplicate_share: float = 0.01
    retention_days: int = 30
    corpus: Path | None = None

    def resolved_start(self, today: date | None = None) -> date:
        """Return ``start``, or the default start counted back from ``today``."""
        if self.start is not None:
            return self.start
        today = today or datetime.now(UTC).date()
        return today - timedelta(days=self.days - 1)

    def validate(self, today: date | None = None) -> None:
        """Raise ConfigError naming the first parameter that is out of range.

        Every simulated day must lie inside the retention period that ends
        today, because the live tables drop older days and reject views
        that start before them.
        """
        self._validate_counts()
        self._validate_shares()
        today = today or datetime.now(UTC).date()
        first = self.resolved_start(today)
        last = first + timedelta(days=self.days - 1)
        oldest = today - timedelta(days=self.retention_days - 1)
        if first < oldest:
            raise ConfigError(
                f"start {first} is older than the retention period of "
                f"{self.retention_days} days, which begins on {oldest}; "
                "choose a later --start or fewer --days"
            )
        if last > today:
            raise ConfigError(
                f"the last simulated day {last} is after today ({today}); "
                "choose an earlier --start or fewer --days"
            )

    def _validate_counts(self) -> None:
        if not _USER_PREFIX_RE.match(self.user_prefix):
            raise ConfigError(
                "user_prefix must be at most 56 letters, digits and _ . @ -, "
                f"got {self.user_prefix!r}"
            )
        if not 1 <= self.users <= MAX_USERS:
            raise ConfigError(
                f"users must be between 1 and {MAX_USERS}, got {self.users}"
            )
        if not 1 <= self.days <= self.retention_days:
            raise ConfigError(
                f"days must be between 1 and the retention period of "
                f"{self.retention_days} days, got {self.days}"
            )
        if self.messages_per_day < 1:
            raise ConfigError(
                f"messages_per_day must be at least 1, got {self.messages_per_day}"
            )
        for name in (
            "likes_per_message",
            "sessions_per_user_per_day",
            "view_median_ms",
            "view_sigma",
            "zipf_exponent",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.views_per_session < 1:
            raise ConfigError(
                f"views_per_session must be at least 1, got {self.views_per_session}"
            )

    def _validate_shares(self) -> None:
        for name in (
            "late_view_share",
            "skewed_view_share",
            "invalid_share",
            "duplicate_share",
        ):
            share = getattr(self, name)
            if not 0 <= share <= 1:
                raise ConfigError(f"{name} must be between 0 and 1, got {share}")

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as JSON values, for the truth file."""
        out: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, date | Path):
                value = str(value)
            out[spec.name] = value
        return out
