"""Backfill time: the Spark job against DuckDB on the same Parquet archive.

    .venv/bin/python bench/backfill.py --events 1000000 10000000 --runs 3

For each size, writes an archive of the benchmark mix (messages 5 %, likes
25 %, views 70 %, over three days) in the archiver's layout and schema to a
local folder, then times, each ``--runs`` times:

* Spark in local mode (``local[2]``, driver memory ``--driver-memory``,
  1 GiB by default as in the job): read, classify,
  de-duplicate, like transitions, VADER scoring of the messages and every
  figure, forced with Spark's ``noop`` sink (no MongoDB write);
* the baseline: the same rules and figures in DuckDB SQL, without sentiment,
  because VADER is Python code; the VADER share is timed on its own as the
  single-threaded scoring of the messages' bodies.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.events import MICROS_PER_DAY, day_to_date, now_micros  # noqa: E402
from app.settings import Settings  # noqa: E402
from batch_backfill.schema import FILE_SCHEMA  # noqa: E402
from bench.common import (  # noqa: E402
    BODIES,
    MIX,
    append_result,
    bench_parser,
    median,
)

PARTITIONS = 4
DAYS = 3


def write_archive(folder: Path, count: int, seed: int = 1) -> int:
    """Write ``count`` events as the archiver would; return the message count."""
    rng = random.Random(seed)
    first_day = now_micros() // MICROS_PER_DAY - DAYS + 1
    n_messages = max(1, int(count * MIX["messages"]))
    n_likes = int(count * MIX["likes"])
    ids = [
        str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_messages)
    ]
    offsets = [0] * PARTITIONS
    groups: dict[tuple[str, str], dict[str, list[object]]] = defaultdict(
        lambda: {name: [] for name in FILE_SCHEMA.names}
    )

    def add(
        kind: str, topic: str, message_id: str, user: str, at: int, **extra: object
    ) -> None:
        partition = hash(message_id) % PARTITIONS
        offset = offsets[partition]
        offsets[partition] += 1
        day = at // MICROS_PER_DAY
        columns = groups[(kind, day_to_date(day).isoformat())]
        row = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "kafka_timestamp": at,
            "key": message_id.encode(),
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "occurred_at": at,
            "message_id": message_id,
            "user": user,
            "body": None,
            "created_at": None,
            "started_at": None,
            "duration_ms": None,
            "raw": None,
            "error": None,
            **extra,
        }
        for name in FILE_SCHEMA.names:
            columns[name].append(row[name])

    span = DAYS * MICROS_PER_DAY
    for index, message_id in enumerate(ids):
        at = first_day * MICROS_PER_DAY + index * span // n_messages
        add(
            "MessagePosted",
            "messages",
            message_id,
            f"user{index % 1000}",
            at,
            body=BODIES[index % len(BODIES)],
            created_at=at,
        )
    for index in range(count - n_messages):
        message_id = ids[int(rng.paretovariate(1.2)) % n_messages]
        at = first_day * MICROS_PER_DAY + index * span // (count - n_messages)
        user = f"user{rng.randrange(5000)}"
        if index < n_likes:
            kind = rng.choice(["LikeAdded", "LikeAdded", "LikeRemoved"])
            add(kind, "likes", message_id, user, at)
        else:
            add(
                "ViewRecorded",
                "views",
                message_id,
                user,
                at,
                started_at=at - 1_000_000,
                duration_ms=rng.randrange(100, 60_000),
            )

    for (kind, day), columns in groups.items():
        path = folder / f"type={kind}" / f"date={day}"
        path.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pydict(columns, schema=FILE_SCHEMA)
        pq.write_table(table, path / "bench-p0-0-0.parquet", coerce_timestamps="us")
    return n_messages


def time_spark(folder: Path, settings: Settings, driver_memory: str) -> float:
    from batch_backfill import aggregates
    from batch_backfill.spark import build_session

    spark = build_session(
        settings,
        app_name="bench-backfill",
        master="local[2]",
        extra={
            "spark.ui.showConsoleProgress": "false",
            "spark.driver.memory": driver_memory,
        },
    )
    try:
        started = time.perf_counter()
        rows = aggregates.read_archive(spark, str(folder))
        classified = aggregates.classify(rows, settings.retention_days)
        posts = classified.posts.cache()
        tallies = aggregates.tally(classified.rest).cache()
        messages = aggregates.scored_messages(posts).cache()
        activity = aggregates.activity(tallies).cache()
        figures = aggregates.compute_figures(messages, activity)
        for frame in (
            figures.daily,
            figures.user_daily,
            figures.user_totals,
            figures.message_daily,
            figures.message_totals,
        ):
            frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started
    finally:
        spark.stop()


DUCKDB_SQL = """
CREATE OR REPLACE TEMP VIEW raw AS
  SELECT * FROM read_parquet('{glob}', hive_partitioning = true);
CREATE OR REPLACE TEMP TABLE events AS
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY partition, "offset") AS n
    FROM (SELECT DISTINCT ON (topic, partition, "offset") * FROM raw WHERE type <> '_invalid')
  ) WHERE n = 1;
CREATE OR REPLACE TEMP TABLE posts AS
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY message_id ORDER BY partition, "offset") AS n2
    FROM events WHERE type = 'MessagePosted'
  ) WHERE n2 = 1;
CREATE OR REPLACE TEMP TABLE likes AS
  SELECT l.*, p.user AS author,
         coalesce(lag(l.type) OVER (PARTITION BY l.message_id, l.user
                                    ORDER BY l.partition, l."offset"), 'LikeRemoved')
           AS previous
  FROM events l JOIN posts p USING (message_id)
  WHERE l.type IN ('LikeAdded', 'LikeRemoved');
CREATE OR REPLACE TEMP TABLE views AS
  SELECT * FROM events WHERE type = 'ViewRecorded'
    AND started_at <= occurred_at + INTERVAL 5 MINUTE
    AND CAST(started_at AS DATE) > CAST(occurred_at AS DATE) - {retention};
SELECT count(*) FROM (
  SELECT CAST(created_at AS DATE) AS day, count(*) FROM posts GROUP BY 1
  UNION ALL SELECT CAST(occurred_at AS DATE), count(*) FROM likes
    WHERE type <> previous GROUP BY 1
  UNION ALL SELECT CAST(started_at AS DATE), sum(duration_ms) FROM views GROUP BY 1
);
SELECT count(*) FROM (
  SELECT user, CAST(occurred_at AS DATE) d, count(*) FROM likes
    WHERE type = 'LikeAdded' AND previous = 'LikeRemoved' GROUP BY 1, 2
  UNION ALL SELECT author, CAST(occurred_at AS DATE), count(*) FROM likes
    WHERE type = 'LikeAdded' AND previous = 'LikeRemoved' GROUP BY 1, 2
  UNION ALL SELECT user, CAST(started_at AS DATE), sum(duration_ms) FROM views GROUP BY 1, 2
  UNION ALL SELECT user, CAST(created_at AS DATE), count(*) FROM posts GROUP BY 1, 2
);
SELECT count(*) FROM (
  SELECT message_id, sum(CASE WHEN type = 'LikeAdded' AND previous = 'LikeRemoved' THEN 1
                              WHEN type = 'LikeRemoved' AND previous = 'LikeAdded' THEN -1
                              ELSE 0 END) FROM likes GROUP BY 1
  UNION ALL SELECT message_id, sum(duration_ms) FROM views GROUP BY 1
);
"""


def time_duckdb(folder: Path, retention_days: int) -> float:
    import duckdb

    sql = DUCKDB_SQL.format(glob=f"{folder}/*/*/*.parquet", retention=retention_days)
    connection = duckdb.connect()
    connection.execute("SET threads = 2; SET TimeZone = 'UTC';")
    started = time.perf_counter()
    for statement in filter(str.strip, sql.split(";")):
        connection.execute(statement).fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def time_vader(messages: int) -> float:
    from app.sentiment import score

    started = time.perf_counter()
    for index in range(messages):
        score(BODIES[index % len(BODIES)] + f" #{index}")
    return time.perf_counter() - started


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--events",
        type=int,
        nargs="+",
        default=[1_000_000],
        help="archive sizes to time, in events",
    )
    parser.add_argument(
        "--driver-memory",
        default="1g",
        help="memory of the Spark driver, which in local mode also runs the "
        "tasks, as a JVM size such as 1g or 2048m",
    )
    args = parser.parse_args()
    settings = Settings.from_env()

    rows = []
    for count in args.events:
        folder = Path(tempfile.mkdtemp(prefix="bench-archive-"))
        try:
            started = time.perf_counter()
            n_messages = write_archive(folder, count)
            print(
                f"{count:,} events written in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            spark_s, duck_s = [], []
            for run in range(args.runs):
                spark_s.append(time_spark(folder, settings, args.driver_memory))
                duck_s.append(time_duckdb(folder, settings.retention_days))
                print(
                    f"{count:,} run {run + 1}: spark {spark_s[-1]:.1f} s, "
                    f"duckdb {duck_s[-1]:.1f} s",
                    flush=True,
                )
            vader_s = time_vader(n_messages)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        spark, duck = median(spark_s), median(duck_s)
        rows += [
            (
                f"{count:,} events: Spark local[2], driver "
                f"{args.driver_memory}, median s",
                f"{spark:.1f}",
            ),
            (
                f"{count:,} events: Spark runs, s",
                ", ".join(f"{seconds:.1f}" for seconds in spark_s),
            ),
            (f"{count:,} events: DuckDB (no sentiment), median s", f"{duck:.1f}"),
            (f"{count:,} events: Spark / DuckDB", f"{spark / duck:.1f}"),
            (
                f"{count:,} events: VADER on {n_messages:,} bodies, one thread, s",
                f"{vader_s:.1f}",
            ),
        ]
    for name, value in rows:
        print(f"{name}: {value}")
    if not args.no_record:
        sizes = " ".join(str(count) for count in args.events)
        append_result(
            "Backfill",
            f"python bench/backfill.py --events {sizes} --runs {args.runs} "
            f"--driver-memory {args.driver_memory}",
            rows,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
