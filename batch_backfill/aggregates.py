"""DataFrame rules of the backfill: which archived events count, and the figures.

The rules are those of ``docs/analytics.md``, in this order:

1. Rows with a (topic, partition, offset) seen before are dropped; they come
   from re-archived offsets.
2. ``_invalid`` rows, which ``decode_event`` rejected, count nowhere, nor do
   views that fail ``check_view_timing`` (expressed here as columns).
3. Of the remaining events with one ``event_id`` on one topic, the one with
   the smallest (partition, offset) is applied, the others are duplicates.
4. The first ``MessagePosted`` of a ``message_id`` wins; later posts of the
   same id are rejected.
5. Likes and unlikes of a message that no accepted post created are rejected.
6. Like transitions per (message, user) are applied in (partition, offset)
   order; see :func:`with_like_effects`.

Days are UTC days since 1970-01-01 computed from epoch microseconds with
integer arithmetic, so neither the JVM's zone nor the session zone can move
an event to another day.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from app.events import MICROS_PER_DAY, VIEW_MAX_FUTURE, to_micros
from batch_backfill.schema import INVALID_TYPE
from batch_backfill.sentiment_udf import SCORED_SCHEMA, score_batches

ACCEPTED = "accepted"
INVALID = "invalid"
VIEW_REJECTED = "view_rejected"
DUPLICATE_EVENT = "duplicate_event"
DUPLICATE_POST = "duplicate_post"
UNKNOWN_MESSAGE = "unknown_message"
LIKE_TYPES = ("LikeAdded", "LikeRemoved")

ARCHIVE_SCHEMA = T.StructType(
    [
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("key", T.BinaryType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("occurred_at", T.TimestampType()),
        T.StructField("message_id", T.StringType()),
        T.StructField("user", T.StringType()),
        T.StructField("body", T.StringType()),
        T.StructField("created_at", T.TimestampType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("duration_ms", T.LongType()),
        T.StructField("raw", T.BinaryType()),
        T.StructField("error", T.StringType()),
        T.StructField("type", T.StringType()),
        T.StructField("date", T.StringType()),
    ]
)


@dataclass(frozen=True)
class Figures:
    """The batch views as DataFrames; per-day ones cover every archived day."""

    daily: DataFrame
    user_daily: DataFrame
    user_totals: DataFrame
    message_daily: DataFrame
    message_totals: DataFrame


def read_archive(spark: SparkSession, path: str) -> DataFrame:
    """Read every archived row; ``type`` and ``date`` come from the folder names."""
    return spark.read.schema(ARCHIVE_SCHEMA).option("basePath", path).parquet(path)


def utc_day(name: str) -> Column:
    """Return floor(``name`` / MICROS_PER_DAY) in exact 64-bit integer arithmetic."""
    column = f"`{name}`"
    return F.expr(f"({column} - pmod({column}, {MICROS_PER_DAY})) div {MICROS_PER_DAY}")


# Columns of the classified rows, the only ones the figures read.
CLASSIFIED_COLUMNS = (
    "type",
    "status",
    "message_id",
    "user",
    "day",
    "body",
    "duration_ms",
    "author",
    "like_effect",
    "unlike_effect",
)
# The sums of activity().
ACTIVITY_FIGURES = ("likes", "unlikes", "view_ms", "views")
# The columns every rule reads.
RULE_COLUMNS = ("topic", "partition", "offset", "event_id", "message_id", "user")


@dataclass(frozen=True)
class Classified:
    """Classified rows in two parts, each with the columns of ``CLASSIFIED_COLUMNS``.

    ``posts`` contains the ``MessagePosted`` rows and ``rest`` every other
    row. They are apart so that a caller can persist the few posts, whose
    bodies the scoring reads, and aggregate the rest with :func:`tally`.
    """

    posts: DataFrame
    rest: DataFrame

    def all(self) -> DataFrame:
        return self.posts.unionByName(self.rest)


def classify(rows: DataFrame, retention_days: int) -> Classified:
    """Return one row per distinct offset, with ``status``, ``day`` and like effects.

    ``status`` is one of ``accepted``, ``invalid``, ``view_rejected``,
    ``duplicate_event``, ``duplicate_post`` or ``unknown_message``. Accepted
    likes and unlikes carry ``author``, ``like_effect`` and ``unlike_effect``
    (0 or 1).

    Posts, likes and the other rows are classified apart, each with only the
    columns its rules read, so that every shuffle moves only the rows and
    columns it needs. This is exact because ``decode_event`` accepts an
    event only on the topic of its type, so the events of one (topic,
    event_id) are all posts, all likes or all of another type. The likes
    read the authors from ``posts``, so a persisted ``posts`` serves them.
    """
    events = with_event_days(rows)
    repeated = repeated_event_keys(rows)
    is_post = F.col("type") == "MessagePosted"
    is_like = F.col("type").isin(*LIKE_TYPES)

    posts = mark_later_ranks(
        mark_duplicate_events(
            events.where(is_post).select(*RULE_COLUMNS, "type", "day", "body"),
            repeated,
        ),
        ["message_id"],
        F.col("status").isNull(),
        DUPLICATE_POST,
    )
    posts = with_classified_columns(posts)
    likes = with_like_effects(
        mark_duplicate_events(
            events.where(is_like).select(*RULE_COLUMNS, "type", "day"), repeated
        ),
        posts,
    )
    others = events.where(~is_post & ~is_like).withColumn(
        "status",
        F.when(F.col("type") == INVALID_TYPE, F.lit(INVALID)).when(
            (F.col("type") == "ViewRecorded") & ~view_timing_ok(retention_days),
            F.lit(VIEW_REJECTED),
        ),
    )
    others = mark_duplicate_events(
        others.select(*RULE_COLUMNS, "type", "day", "duration_ms", "status"), repeated
    )
    rest = with_classified_columns(likes).unionByName(with_classified_columns(others))
    return Classified(posts=posts, rest=rest)


def with_classified_columns(events: DataFrame) -> DataFrame:
    """Select ``CLASSIFIED_COLUMNS``: a missing status is ``accepted``, effects 0."""
    missing = {
        "body": F.lit(None).cast("string"),
        "duration_ms": F.lit(None).cast("long"),
        "author": F.lit(None).cast("string"),
        "like_effect": F.lit(0),
        "unlike_effect": F.lit(0),
    }
    events = events.withColumns(
        {name: value for name, value in missing.items() if name not in events.columns}
    )
    events = events.withColumn("status", F.coalesce("status", F.lit(ACCEPTED)))
    return events.select(*CLASSIFIED_COLUMNS)


def with_event_days(rows: DataFrame) -> DataFrame:
    """Add epoch-microsecond columns and ``day``, the UTC day of the event time.

    The event time is ``created_at`` for a message, ``started_at`` for a
    view and ``occurred_at`` for a like or an unlike.
    """
    rows = rows.withColumns(
        {
            "occurred_us": F.unix_micros("occurred_at"),
            "started_us": F.unix_micros("started_at"),
            "created_us": F.unix_micros("created_at"),
        }
    )
    event_us = (
        F.when(F.col("type") == "MessagePosted", F.col("created_us"))
        .when(F.col("type") == "ViewRecorded", F.col("started_us"))
        .otherwise(F.col("occurred_us"))
    )
    rows = rows.withColumn("event_us", event_us)
    return rows.withColumn("day", utc_day("event_us"))


def view_timing_ok(retention_days: int) -> Column:
    """Return ``check_view_timing`` of ``app.events`` as a boolean column.

    A view may start at most 5 minutes after its ``occurred_at``, and its UTC
    day must be at most ``retention_days - 1`` days before the UTC day of
    its ``occurred_at``.
    """
    started, occurred = F.col("started_us"), F.col("occurred_us")
    not_in_future = started <= occurred + F.lit(to_micros(VIEW_MAX_FUTURE))
    oldest_day = utc_day("occurred_us") - F.lit(retention_days) + F.lit(1)
    return not_in_future & (utc_day("started_us") >= oldest_day)


def event_key() -> Column:
    """Return a 64-bit hash of (``event_id``, ``topic``), the key of rule 3."""
    return F.xxhash64("event_id", "topic")


def repeated_event_keys(rows: DataFrame) -> DataFrame:
    """Return the ``event_key`` values that more than one archived row has.

    Both the re-archived copies of an offset and the repeated event ids have
    such a key, and so do the rows whose keys collide, which is harmless
    because :func:`mark_duplicate_events` only sends them to the exact rule.
    Counting a long per row in a hash aggregate is cheaper than sorting
    every row: at 10M events the window sort of all rows took a fifth of
    the JVM's samples (docs/benchmarks.md).
    """
    return (
        rows.select(event_key().alias("_key"))
        .groupBy("_key")
        .count()
        .where(F.col("count") > 1)
        .select("_key")
    )


def mark_duplicate_events(events: DataFrame, repeated: DataFrame) -> DataFrame:
    """Drop re-archived copies of an offset and mark repeated event ids.

    Of the candidates (rows without a ``status`` yet) of one (topic,
    event_id), the one with the smallest (partition, offset) stays and the
    others get ``duplicate_event``. Rows with a status keep it. Every copy
    of an offset but one is dropped: a re-archived offset is the same Kafka
    record, so its copies have one event_id and lie next to each other in
    the window's order. One sort serves both rules, in place of a shuffle
    for each.

    Only the rows whose ``event_key`` is in ``repeated`` (from
    :func:`repeated_event_keys`) go through that window. Any other row is
    the only one of its (topic, event_id), so both rules leave it as it is.
    ``repeated`` is broadcast, so it must fit in the driver's memory.
    NOTE: this is true while repeats are rare, as when the archiver
    re-archives a flush now and then. An archive where most rows repeat
    would need a shuffle join here instead.
    """
    if "status" not in events.columns:
        events = events.withColumn("status", F.lit(None).cast("string"))
    keyed = events.withColumn("_key", event_key())
    singles = keyed.join(F.broadcast(repeated), "_key", "left_anti").drop("_key")
    repeats = keyed.join(F.broadcast(repeated), "_key", "left_semi").drop("_key")

    candidate = F.col("status").isNull()
    # event_id first: Spark sorts by a prefix of the first key, and the topic
    # is the same on most rows.
    window = Window.partitionBy("event_id", "topic").orderBy(
        candidate.desc(), "partition", "offset"
    )
    same_offset = (F.lag("partition").over(window) == F.col("partition")) & (
        F.lag("offset").over(window) == F.col("offset")
    )
    first_offset = F.dense_rank().over(window) == 1
    marked = repeats.withColumns(
        {
            "_copy": F.coalesce(same_offset, F.lit(False)),
            "status": F.when(
                candidate & ~first_offset, F.lit(DUPLICATE_EVENT)
            ).otherwise(F.col("status")),
        }
    )
    return singles.unionByName(marked.where(~F.col("_copy")).drop("_copy"))


def mark_later_ranks(
    events: DataFrame, keys: list[str], candidate: Column, status: str
) -> DataFrame:
    """Set ``status`` on every candidate row but the first of its key.

    "First" is the smallest (partition, offset). Non-candidates form their
    own window partition, so they neither rank nor shift the candidates.
    """
    window = Window.partitionBy(*keys, candidate).orderBy("partition", "offset")
    rank = F.row_number().over(window)
    return events.withColumn(
        "status",
        F.when(candidate & (rank > 1), F.lit(status)).otherwise(F.col("status")),
    )


def with_like_effects(likes: DataFrame, posts: DataFrame) -> DataFrame:
    """Reject likes of never-posted messages and mark effective likes and unlikes.

    Every pair (message, user) starts not liked. A LikeAdded leaves the pair
    liked and a LikeRemoved leaves it not liked, whatever the state before,
    so the state before an event is set by the previous applied event of the
    pair alone. Hence a LikeAdded is an effective like when the previous
    event is missing or a LikeRemoved, and a LikeRemoved is an effective
    unlike when the previous event is a LikeAdded. Repeated likes or
    unlikes in between change nothing, so like-unlike-unlike gives one like
    and one unlike, and like-unlike-like gives two likes and one unlike.
    """
    authors = posts.where(F.col("status") == ACCEPTED).select(
        "message_id", F.col("user").alias("author")
    )
    likes = likes.join(authors, "message_id", "left")
    likes = likes.withColumn(
        "status",
        F.when(
            F.col("status").isNull() & F.col("author").isNull(), F.lit(UNKNOWN_MESSAGE)
        ).otherwise(F.col("status")),
    )
    applied = F.col("status").isNull()
    window = Window.partitionBy("message_id", "user", applied).orderBy(
        "partition", "offset"
    )
    previous = F.lag("type").over(window)
    like = (F.col("type") == "LikeAdded") & (
        previous.isNull() | (previous == "LikeRemoved")
    )
    unlike = (F.col("type") == "LikeRemoved") & (previous == "LikeAdded")
    return likes.withColumns(
        {
            "like_effect": F.when(applied & like, 1).otherwise(0),
            "unlike_effect": F.when(applied & unlike, 1).otherwise(0),
        }
    )


def scored_messages(classified: DataFrame) -> DataFrame:
    """Return the accepted posts with ``compound_units`` and ``label`` from VADER.

    The posts are spread evenly over one partition per core first, because
    they sit in a few of the classified partitions and each partition costs
    a Python task. On a 2-core machine such a task took 0.2 to 0.5 s even
    without a post (docs/benchmarks.md).
    """
    posts = classified.where(
        (F.col("status") == ACCEPTED) & (F.col("type") == "MessagePosted")
    ).select("message_id", "user", "day", "body")
    cores = posts.sparkSession.sparkContext.defaultParallelism
    return posts.repartition(cores).mapInPandas(score_batches, SCORED_SCHEMA)


def tally(classified: DataFrame) -> DataFrame:
    """Count classified rows per (type, status, message_id, user, day).

    Columns: those keys, ``rows``, ``author`` (the max, and the author
    depends on the message alone), ``likes`` and ``unlikes`` (effective
    ones) and ``view_ms``. The status counts and every figure of likes and
    views are sums over these groups, so a caller can persist this
    aggregate instead of the classified rows, and read them once.
    """
    return classified.groupBy("type", "status", "message_id", "user", "day").agg(
        F.count("*").alias("rows"),
        F.max("author").alias("author"),
        F.sum("like_effect").alias("likes"),
        F.sum("unlike_effect").alias("unlikes"),
        F.sum("duration_ms").alias("view_ms"),
    )


def activity(tallies: DataFrame) -> DataFrame:
    """Sum the accepted likes and views of a :func:`tally` per (message_id, user, day).

    Columns: ``author`` of the message (null when the group has only
    views), ``likes`` and ``unlikes`` (effective ones), ``view_ms`` and
    ``views``. Every figure of likes and views is a sum over these groups.
    """
    is_view = F.col("type") == "ViewRecorded"
    return (
        tallies.where(
            (F.col("status") == ACCEPTED)
            & F.col("type").isin(*LIKE_TYPES, "ViewRecorded")
        )
        .groupBy("message_id", "user", "day")
        .agg(
            F.max("author").alias("author"),
            F.sum("likes").alias("likes"),
            F.sum("unlikes").alias("unlikes"),
            F.sum(F.when(is_view, F.col("view_ms"))).alias("view_ms"),
            F.sum(F.when(is_view, F.col("rows")).otherwise(0)).alias("views"),
        )
    )


def compute_figures(messages: DataFrame, activity: DataFrame) -> Figures:
    """Aggregate scored messages and :func:`activity` into the batch views.

    The figures are those of docs/analytics.md. Users appear in
    ``user_totals`` only when they posted.
    """
    return Figures(
        daily=daily_figures(messages, activity),
        user_daily=user_daily_figures(messages, activity),
        user_totals=messages.groupBy("user").agg(F.count("*").alias("messages")),
        message_daily=(
            activity.where(F.col("likes") > 0)
            .groupBy("message_id", "day")
            .agg(F.sum("likes").alias("likes"))
        ),
        message_totals=message_total_figures(messages, activity),
    )


def daily_figures(messages: DataFrame, activity: DataFrame) -> DataFrame:
    label = F.col("label")
    parts = [
        messages.groupBy("day").agg(
            F.count("*").alias("messages"),
            F.count("*").alias("s_count"),
            F.sum("compound_units").alias("s_sum"),
            F.sum(F.when(label == "positive", 1).otherwise(0)).alias("positive"),
            F.sum(F.when(label == "neutral", 1).otherwise(0)).alias("neutral"),
            F.sum(F.when(label == "negative", 1).otherwise(0)).alias("negative"),
        ),
        activity.groupBy("day").agg(
            *(F.sum(name).alias(name) for name in ACTIVITY_FIGURES)
        ),
    ]
    columns = [
        "messages",
        "likes",
        "unlikes",
        "view_ms",
        "views",
        "s_count",
        "s_sum",
        "positive",
        "neutral",
        "negative",
    ]
    return sum_parts(parts, ["day"], columns)


def user_daily_figures(messages: DataFrame, activity: DataFrame) -> DataFrame:
    """Sum the figures per (user, day) that has at least one non-zero figure.

    Each part keeps only the groups where its figure is non-zero, so a user
    whose only event of a day was an ineffective like gets no row.
    """
    liked = activity.where(F.col("likes") > 0)
    parts = [
        messages.groupBy("user", "day").agg(F.count("*").alias("messages")),
        liked.groupBy("user", "day").agg(F.sum("likes").alias("likes_given")),
        liked.groupBy(F.col("author").alias("user"), "day").agg(
            F.sum("likes").alias("likes_received")
        ),
        activity.where(F.col("views") > 0)
        .groupBy("user", "day")
        .agg(F.sum("view_ms").alias("view_ms"), F.sum("views").alias("views")),
    ]
    columns = ["messages", "likes_given", "likes_received", "view_ms", "views"]
    return sum_parts(parts, ["user", "day"], columns)


def message_total_figures(messages: DataFrame, activity: DataFrame) -> DataFrame:
    parts = [
        messages.select(
            "message_id",
            F.col("user").alias("author"),
            F.col("day").alias("created_day"),
        ),
        activity.groupBy("message_id").agg(
            (F.sum("likes") - F.sum("unlikes")).alias("like_count"),
            F.sum("view_ms").alias("view_ms"),
            F.sum("views").alias("views"),
        ),
    ]
    combined = parts[0].unionByName(parts[1], allowMissingColumns=True)
    return combined.groupBy("message_id").agg(
        # Only the accepted post has an author, so max() picks it.
        F.max("author").alias("author"),
        F.max("created_day").alias("created_day"),
        *(
            F.coalesce(F.sum(name), F.lit(0)).cast("long").alias(name)
            for name in ("like_count", "view_ms", "views")
        ),
    )


def sum_parts(parts: list[DataFrame], keys: list[str], columns: list[str]) -> DataFrame:
    """Union partial aggregates with missing columns as 0 and sum them per key."""
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.unionByName(part, allowMissingColumns=True)
    return combined.groupBy(*keys).agg(
        *(
            F.coalesce(F.sum(name), F.lit(0)).cast("long").alias(name)
            for name in columns
        )
    )


def status_counts(*frames: DataFrame) -> dict[tuple[str, str], int]:
    """Return the number of distinct archived offsets per (type, status).

    Each frame contains classified rows or a :func:`tally` of them.
    """
    counts: dict[tuple[str, str], int] = {}
    for frame in frames:
        number = F.sum("rows") if "rows" in frame.columns else F.count("*")
        for row in frame.groupBy("type", "status").agg(number.alias("n")).collect():
            key = (row["type"], row["status"])
            counts[key] = counts.get(key, 0) + int(row["n"])
    return counts
