"""Table recovery that applies changelog records in batches.

Faust's recovery takes changelog records one at a time from a queue. For each
one, the conductor decodes the key and value into an event. The recovery loop
then waits on the queue with a timeout, which starts a task, and sums the
records left over every partition to see whether it is done. Profiled on this
project's benchmark machine, a worker recovering 200,000 keys spent most of
its time there, and the RocksDB writes took 2 % of it.

Here the conductor hands changelog records to an intake (see
:mod:`agents.intake`) as they are fetched, undecoded, and
:class:`BulkRecovery` takes them in batches of up to ``BATCH_MAX``. It keeps
Faust's rules for each record. A record of a partition that is neither
active nor standby here is skipped, and so is a record at or below the
partition's last applied offset. The others are written to the table's
RocksDB store with their offsets. The check for the end of the recovery runs once per
batch. Everything else, from the seek to the signals that start and end a
recovery, is Faust's.

Not supported, and rejected at start: tables with an ``on_changelog_event``
callback, which needs decoded events, and the ``exactly_once`` guarantee,
whose aborted transactions Faust's loop steps over.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from faust.utils.tracing import finish_span
from mode import Service

from agents.intake import IntakeConductor, IntakeRecord

# Changelog records applied per batch.
BATCH_MAX = 5_000
# How long the loop waits for a record before it checks for the end of the
# recovery again (Faust's loop waits 5 s too).
IDLE_CHECK_S = 5.0


class BulkRecovery(Recovery):
    """Faust's recovery, with the changelog records applied in batches."""

    def __init__(self, app: Any, tables: Any, **kwargs: Any) -> None:
        super().__init__(app, tables, **kwargs)
        conductor = app.topics
        if not isinstance(conductor, IntakeConductor):
            raise TypeError(
                "BulkRecovery needs an app whose conductor is an IntakeConductor; "
                "create the app as agents.intake.IntakeApp"
            )
        self.intake = conductor.add_changelog_intake()

    def _check_supported(self) -> None:
        if self.app.in_transaction:
            raise RuntimeError(
                "BulkRecovery does not support processing_guarantee=exactly_once; "
                "use at_least_once or Faust's own TableManager"
            )
        for table in self.tables.values():
            if table._on_changelog_event is not None:
                raise RuntimeError(
                    f"BulkRecovery does not support on_changelog_event, which "
                    f"table {table.name} sets; remove it or use Faust's own "
                    f"TableManager"
                )

    @Service.task
    async def _slurp_changelogs(self) -> None:
        self._check_supported()
        while not self.should_stop:
            # Cleared on every turn and set once this recovery is done, so the
            # next recovery never finds it still set by the last one.
            self.signal_recovery_end.clear()
            try:
                messages = await asyncio.wait_for(
                    self.intake.take(BATCH_MAX, 0.0), IDLE_CHECK_S
                )
            except TimeoutError:
                messages = []
            if self.should_stop:
                return
            try:
                self.apply_batch(messages)
                self._after_batch()
            except Exception as exc:
                # Faust's loop also logs and goes on. The next recovery seeks
                # to the offsets that RocksDB contains and reads from there.
                partitions = sorted({str(m.tp) for m in messages})
                self.log.exception(
                    "Applying %d changelog records of %s failed: %r",
                    len(messages),
                    ", ".join(partitions),
                    exc,
                )

    def apply_batch(self, messages: list[Any]) -> None:
        """Write the new records of ``messages`` to their tables' stores."""
        if not messages:
            return
        now = monotonic()
        active_tps = self.active_tps
        standby_tps = self.standby_tps
        buffers = self.buffers
        for message in messages:
            tp: TP = message.tp
            if tp in active_tps:
                offsets = self.active_offsets
                self._active_events_received_at[tp] = now
            elif tp in standby_tps:
                offsets = self.standby_offsets
                self._standby_events_received_at[tp] = now
            else:
                continue
            seen = offsets.get(tp)
            if seen is not None and message.offset <= seen:
                continue
            offsets[tp] = message.offset
            # The store reads only ``record.message`` of a changelog event.
            record = IntakeRecord(message)
            buffers[self.tp_to_table[tp]].append(record)  # type: ignore[arg-type]
        for table, buffer in buffers.items():
            if buffer:
                table.apply_changelog_batch(buffer)
                buffer.clear()
        self._last_flush_at = monotonic()

    def _after_batch(self) -> None:
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            self.signal_recovery_end.set()
        standbys_ready = self._standbys_span is None and self.tables.standbys_ready
        if not standbys_ready and not self.standby_remaining_total():
            if self._standbys_span is not None:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()


class BulkTableManager(TableManager):
    """Faust's table manager with :class:`BulkRecovery` as its recovery."""

    async def on_start(self) -> None:
        # The recovery registers the changelog intake. Faust adds the changelog
        # channels to the conductor only in on_start, so creating it first
        # routes every changelog record to the intake.
        if not isinstance(self.recovery, BulkRecovery):
            raise TypeError(f"expected a BulkRecovery, got {self.recovery!r}")
        await super().on_start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop
            )
        return self._recovery
