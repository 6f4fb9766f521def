"""The peer baseline: the benchmark's counting in Quix Streams, as its own process.

    python bench/quix_baseline.py PREFIX COUNT STATE_DIR

Reads the three event topics of ``PREFIX`` from the start with a new
consumer group and counts views, likes and messages per message id in a
RocksDB-backed state with its changelog (Quix Streams' defaults). Prints the
events per second from the first record to the ``COUNT``-th.
"""

from __future__ import annotations

import sys
import time
import uuid

from quixstreams import Application


def main() -> int:
    prefix, count, state_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = Application(
        broker_address="127.0.0.1:9092",
        consumer_group=f"{prefix}quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    seen = 0
    started = 0.0

    def count_per_message(value: dict, state) -> None:  # type: ignore[no-untyped-def]
        nonlocal seen, started
        if seen == 0:
            started = time.perf_counter()
        state.set("count", state.get("count", 0) + 1)
        day = value["occurred_at"][:10]
        state.set(day, state.get(day, 0) + 1)
        seen += 1
        if seen >= count:
            elapsed = time.perf_counter() - started
            print(f"{count / elapsed:.1f}", flush=True)
            app.stop()

    for name in ("messages", "likes", "views"):
        topic = app.topic(f"{prefix}{name}", value_deserializer="json")
        app.dataframe(topic).update(count_per_message, stateful=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
