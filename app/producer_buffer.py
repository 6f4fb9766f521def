"""A Faust producer buffer whose flush waits for every record put before it.

Faust flushes its producer before it commits source offsets, so that the
table changelog records written for the committed records are on the broker
first. In faust-streaming 0.15.3, ``ProducerBuffer.flush`` returns as soon as
0.1 s pass without a record sent, even with records still in the buffer.
Under load, a commit could then pass changelog records still waiting here.
A worker that took the partition over in a rebalance recovered the table
without them and went on after their offsets, so those updates were lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.producer import ProducerBuffer

# How often a waiting flush checks that the buffer is still running.
STATE_CHECK_S = 1.0


class DrainingProducerBuffer(ProducerBuffer):
    """Producer buffer whose ``flush`` returns once earlier records are sent.

    Records are sent one at a time in the order they were put. A flush
    notes ``sends_started + size``, the count of records put so far, and
    waits until that many sends have finished, each handing a record to the
    Kafka client. Records put while it waits do not hold it up, so a flush
    also ends under a steady load.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sends_started = 0
        self.sends_finished = 0
        self._sent_changed = asyncio.Event()

    async def _send_pending(self, fut: Any) -> None:
        # Runs in the same step as the queue's get, so ``sends_started + size`` is
        # the number of records ever put, as seen by any other task.
        self.sends_started += 1
        try:
            await super()._send_pending(fut)
        finally:
            self.sends_finished += 1
            self._sent_changed.set()

    async def flush(self) -> None:
        target = self.sends_started + self.size
        while self.sends_finished < target:
            if self.state != "running":
                raise RuntimeError(
                    f"cannot flush the producer buffer in state {self.state}: "
                    f"{target - self.sends_finished} records not sent"
                )
            self._sent_changed.clear()
            try:
                await asyncio.wait_for(self._sent_changed.wait(), STATE_CHECK_S)
            except TimeoutError:
                continue


def install_draining_buffer(producer: Any, max_messages: int) -> None:
    """Replace the buffer of a Faust producer that has not started yet."""
    if producer.app.conf.producer_threaded:
        raise ValueError("the draining buffer does not support producer_threaded")
    buffer = DrainingProducerBuffer(loop=producer.loop, beacon=producer.beacon)
    buffer.app = producer.app
    buffer.max_messages = max_messages
    producer.buffer = buffer
