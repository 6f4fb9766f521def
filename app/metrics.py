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

counters = Counters()
counters.describe(REJECTED, "Events rejected by the API or sent to the dead-letter topic.")
counters.describe(DUPLICATES, "Events ignored because their event id was already applied.")
counters.describe(APPLIED, "Events applied by the agents.")
