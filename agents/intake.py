"""Bulk intake: fetched records reach the agents in batches, not one by one.

Faust delivers every fetched record on its own: the conductor decodes it into
an event, puts it on the channel's queue, and the agent's stream takes it
off, runs its sensors and acknowledges it. Measured on this project's
benchmark machine, that path alone allowed about 5,800 records/s with
``take(2000)`` and no work done per record.

Here the conductor's handler for an agent's topic only appends the fetched
message to the topic's :class:`Intake`, and the agent takes whole batches from
it. The agent is still a Faust agent: Faust subscribes its topic, assigns its
partitions, and starts, stops and supervises it. Only its stream is never
iterated. What the stream did per record is done per batch:

- A taken message is tracked as pending until its batch is applied, and then
  acknowledged, so commits and ``stream_wait_empty`` see it as before.
- A message fetched before the last rebalance is dropped without an ack: the
  worker that owns its partition now reads it again from the committed offset.
- While a rebalance is in progress, taken messages are dropped without an ack
  too. If the partitions stay, the offset check of :mod:`agents.continuity`
  finds the gap and reads them again.

Records of the tables' changelog topics go the same way, to one intake that
:class:`tables.recovery.BulkRecovery` reads in batches, in place of Faust's
per-record changelog queue.

Faust's fetch loop also hands over each record on its own: it starts the
conductor's handler and a wait for a rebalance as two tasks and waits for the
first to finish. :class:`IntakeConsumer` first offers the record to its
intake, which takes it at once when no rebalance is in progress and there is
room. Only a record that the intake cannot take now goes the way of Faust's
loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.transport.conductor import Conductor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

# Records an intake keeps before the fetcher waits for the agent. Faust's
# own channel queues take up to ``stream_buffer_maxsize`` records each.
INTAKE_MAX = 16_384


class IntakeRecord:
    """A fetched record as the agents' batch code reads it: ``record.message``."""

    __slots__ = ("message",)

    def __init__(self, message: Any) -> None:
        self.message = message


class Intake:
    """The fetched, not yet taken records of one topic."""

    def __init__(self, app: Any, maxsize: int = INTAKE_MAX) -> None:
        self._app = app
        self._maxsize = maxsize
        self._buffer: deque[Any] = deque()
        self._want = 1
        self._filled = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        # Event-loop time of the last take; 0.0 lets the first one go at once.
        self._last_take = 0.0

    def __len__(self) -> int:
        return len(self._buffer)

    def partitions(self) -> set[TP]:
        """Return the partitions that have records waiting here."""
        return {message.tp for message in list(self._buffer)}

    def clear(self) -> None:
        """Drop every record not taken yet."""
        self._buffer.clear()
        self._space.set()

    def offer(self, message: Any) -> bool:
        """Take ``message`` if that needs no wait; return whether it was taken.

        The handler from :meth:`handler` waits for the end of a rebalance,
        for room in the producer buffer and for room here. When it would not
        have to wait, this method appends the record without a task switch.
        """
        producer_buffer = self._app.producer.buffer
        if (
            not self._app.flow_control.is_active()
            or producer_buffer.size > producer_buffer.max_messages
            or len(self._buffer) >= self._maxsize
        ):
            return False
        self._append(message)
        return True

    def _append(self, message: Any) -> None:
        self._buffer.append(message)
        if len(self._buffer) >= self._want:
            self._filled.set()

    def handler(self, tp: TP) -> Callable[[Any], Awaitable[None]]:
        """Return the conductor's callback for the messages fetched from ``tp``."""
        acquire_flow_control = self._app.flow_control.acquire
        wait_until_producer_ebb = self._app.producer.buffer.wait_until_ebb
        buffer = self._buffer

        async def on_message(message: Any) -> None:
            # Faust's handler waits for the same two things: the end of a
            # rebalance, and room in the producer buffer.
            await acquire_flow_control()
            await wait_until_producer_ebb()
            while len(buffer) >= self._maxsize:
                self._space.clear()
                await self._space.wait()
            self._append(message)

        return on_message

    async def take(self, max_records: int, within: float) -> list[Any]:
        """Return up to ``max_records`` records, ``within`` s after the last take.

        The wait ends early when ``max_records`` are in. As with Faust's
        ``take_events``, batches are cut on a fixed cadence, so a record
        waits half of ``within`` on average, not all of it.
        """
        self._want = 1
        while not self._buffer:
            self._filled.clear()
            await self._filled.wait()
        loop = asyncio.get_running_loop()
        remaining = self._last_take + within - loop.time()
        if remaining > 0 and len(self._buffer) < max_records:
            self._want = max_records
            self._filled.clear()
            try:
                await asyncio.wait_for(self._filled.wait(), remaining)
            except TimeoutError:
                pass
        buffer = self._buffer
        batch = [buffer.popleft() for _ in range(min(max_records, len(buffer)))]
        self._last_take = loop.time()
        self._space.set()
        return batch


class IntakeConductor(Conductor):
    """Faust's conductor, except that topics with an intake are handed to it."""

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.intakes: dict[str, Intake] = {}
        # Set by BulkRecovery: the intake of every changelog topic.
        self.changelog_intake: Intake | None = None
        # Topic name -> intake, for the topics that have a handler built.
        self._routes: dict[str, Intake] = {}

    def add_changelog_intake(self) -> Intake:
        """Hand every table's changelog topic to one intake, cleared on resume.

        Faust clears its changelog queue when the flow resumes after a
        rebalance, before the recovery reads from the offsets it sought.
        This intake is cleared at the same moment.
        """
        if self.changelog_intake is None:
            self.changelog_intake = Intake(self.app)
            self.app.flow_control.manage_queue(self.changelog_intake)  # type: ignore[arg-type]
        return self.changelog_intake

    def offer(self, message: Any) -> bool:
        """Hand ``message`` to its topic's intake if it takes it without a wait."""
        intake = self._routes.get(message.topic)
        return intake is not None and intake.offer(message)

    def add_intake(self, topic: str) -> Intake:
        """Hand ``topic`` to an intake; call before the worker subscribes."""
        intake = self.intakes.get(topic)
        if intake is None:
            intake = self.intakes[topic] = Intake(self.app)
        return intake

    def _build_handler(self, tp: TP, channels: Any) -> Any:
        intake = self.intakes.get(tp.topic)
        if (
            intake is None
            and self.changelog_intake is not None
            and tp.topic in self.app.tables.changelog_topics
        ):
            intake = self.changelog_intake
        if intake is None:
            return super()._build_handler(tp, channels)
        self._routes[tp.topic] = intake
        return intake.handler(tp)


# Faust's fetch loop lets other tasks run after this many records.
YIELD_EVERY = 100


class IntakeConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a fetch loop that offers records first.

    The loop keeps the bookkeeping of Faust's own loop:

    - a record older than the last one read from its partition is skipped;
    - a jump in the offsets of an acknowledged topic is noted as a gap;
    - the offsets are committed after every ``broker_commit_every``
      acknowledged records;
    - a record that its handler must wait for is raced against the
      suspension of the flow.
    """

    async def _drain_messages(self, fetcher: Any) -> None:
        conductor = self.app.topics
        offer = conductor.offer if isinstance(conductor, IntakeConductor) else None
        read_offsets = self._read_offset
        acks_enabled_for = conductor.acks_enabled_for
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                # Let other tasks run, because getmany can return at once many
                # times in a row.
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    last = read_offsets[tp]
                    if last is not None and offset < last:
                        continue
                    if last and offset - last > 1 and acks_enabled_for(tp.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if offer is None or not offer(message):
                        await self.wait_first(
                            self.callback(message), self.suspend_flow.wait()
                        )
                    read_offsets[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.app.should_stop:
                raise
            self.log.info("Broker stopped the consumer, so the fetch loop ends")
        except asyncio.CancelledError:
            if not self.app.should_stop:
                raise
            self.log.info("Fetch loop cancelled while the worker shuts down")
        except Exception as exc:
            self.log.exception("Fetch loop failed: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class IntakeTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`IntakeConsumer` as its consumer."""

    Consumer = IntakeConsumer


class IntakeApp(faust.App):
    """A Faust app with an :class:`IntakeConductor` and an :class:`IntakeConsumer`."""

    def _new_conductor(self) -> IntakeConductor:
        return IntakeConductor(app=self, beacon=None)

    def _new_transport(self) -> Any:
        return IntakeTransport(self.conf.broker_consumer, self)


def waiting_partitions(app: Any) -> set[TP]:
    """Return the partitions with records in any of the app's intakes."""
    conductor = getattr(app, "topics", None)
    if not isinstance(conductor, IntakeConductor):
        return set()
    return set().union(*(intake.partitions() for intake in conductor.intakes.values()))


def topic_intake(stream: Any) -> Intake | None:
    """Return the intake registered for the stream's single topic, if any."""
    conductor = stream.app.topics
    names: tuple[str, ...] = tuple(getattr(stream.channel, "topics", ()))
    if not isinstance(conductor, IntakeConductor) or len(names) != 1:
        return None
    return conductor.intakes.get(names[0])
