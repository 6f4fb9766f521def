"""The Faust tables of the speed layer.

Every table lives in RocksDB with a changelog topic, so a restarted worker
recovers it. A table is written only by the agent of one topic, and every key
of it hashes to the partition of that agent's record key (message id, user or
day), which keeps the changelog partition equal to the source partition.

Per-day figures live in tumbling one-day windowed tables that expire after
the retention period. Faust resolves windows from the record or processing
time in ``.current()``, ``.now()`` and ``.delta()``, so this code never uses
those: it computes each event's window from the event's own time with
:func:`day_window` and reads and writes that window explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from app.settings import Settings

DAY_SECONDS = 86_400.0
MIB = 1024 * 1024
# Each table has one RocksDB database per partition, 40 in all with 4
# partitions. Faust's defaults are 3 memtables of 64 MiB and a 2 GiB block
# cache per database, so memory grows with every key. These options bound
# every database to 8 MiB of memtables and an 8 MiB block cache.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 4 * MIB,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * MIB,
    "target_file_size_base": 16 * MIB,
}
# Faust names each changelog topic "<app id>-<table name>-changelog".
TABLE_NAMES = (
    "message-authors",
    "like-state",
    "pending-likes",
    "message-likes",
    "message-like-days",
    "message-views",
    "view-offsets",
    "user-days",
    "user-totals",
    "days",
)


class CheckedTable(faust.Table[Any, Any]):
    """A Faust table whose partition check waits for the changelog's metadata.

    Before writing, Faust checks once per source topic that the changelog has
    as many partitions as the source. The consumer reports 0 partitions for a
    subscribed topic that is not in its metadata yet, such as a changelog
    created a moment earlier, and Faust then raises ``PartitionsMismatch``,
    which stops the agent. Here the check is skipped until the changelog is
    known, and runs in full from then on.
    """

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        if not self.app.consumer.topic_partitions(self.changelog_topic_name):
            return
        super()._verify_source_topic_partitions(source_topic)


@dataclass(frozen=True)
class Tables:
    # Keyed by message id, written by the message agent.
    message_authors: Any
    # Keyed by "<message id> <user>", written by the like agent.
    like_state: Any
    # Keyed by message id, written by the like agent (and by the message agent
    # when it applies likes that arrived before their message).
    pending_likes: Any
    message_likes: Any
    message_like_days: Any
    # Keyed by message id, written by the view agent.
    message_views: Any
    # Keyed by source partition, written by the view agent.
    view_offsets: Any
    # Keyed by user, written by the user rollup agent.
    user_days: Any
    user_totals: Any
    # Keyed by day (YYYY-MM-DD), written by the day rollup agent.
    days: Any

    def all(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def create_tables(app: faust.App, settings: Settings) -> Tables:
    partitions = settings.topic_partitions
    expires = timedelta(days=settings.retention_days)

    def plain(name: str, help_text: str) -> Any:
        return app.Table(
            name,
            default=None,
            partitions=partitions,
            help=help_text,
            # The store pops keys from this dict, so each table gets a copy.
            options=dict(ROCKSDB_OPTIONS),
        )

    def daily(name: str, help_text: str) -> Any:
        table = app.Table(
            name,
            default=None,
            partitions=partitions,
            help=help_text,
            # The store pops keys from this dict, so each table gets a copy.
            options=dict(ROCKSDB_OPTIONS),
        )
        return table.tumbling(timedelta(days=1), expires=expires)

    return Tables(
        message_authors=plain("message-authors", "Author and event id of a message."),
        like_state=plain("like-state", "Like state of a (message, user) pair."),
        pending_likes=plain(
            "pending-likes", "Likes that arrived before their message."
        ),
        message_likes=plain("message-likes", "Current like count of a message."),
        message_like_days=daily("message-like-days", "Likes of a message per day."),
        message_views=plain("message-views", "View time of a message."),
        view_offsets=plain(
            "view-offsets", "Last applied offset of each views partition."
        ),
        user_days=daily("user-days", "Per-user figures of one day."),
        user_totals=plain("user-totals", "Per-user figures over all days."),
        days=daily("days", "Figures of one day."),
    )


def day_window(day: int) -> tuple[float, float]:
    """Return the Faust tumbling window of UTC day ``day`` (days since epoch).

    Faust ends a window 0.1 s before the next one starts.
    """
    start = day * DAY_SECONDS
    return (start, start + DAY_SECONDS - 0.1)


def read_window(table: Any, key: str, day: int) -> Any:
    """Return the value of ``key`` in the window of ``day``, or None."""
    return table.table.get((key, day_window(day)))


def write_window(table: Any, key: str, day: int, value: Any) -> None:
    table[key][day_window(day)] = value
