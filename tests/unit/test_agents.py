"""Agent batch logic against in-memory stand-ins for tables, topics and store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

import agents.batching as batching
import agents.likes as likes_module
from agents.batching import (
    USER_ROUTER,
    USERS_PER_ROLLUP_RECORD,
    DeadLetters,
    RollupDeltas,
)
from agents.likes import apply_like_batch
from agents.messages import apply_message_batch
from agents.rollups import apply_day_rollups, apply_user_rollups
from agents.views import RECENT_VIEW_IDS, apply_view_batch
from app.events import MICROS_PER_DAY, make_event, new_message_id
from app.metrics import REDELIVERED, counters
from tables.definitions import day_window

DAY = 20_000
NOON = DAY * MICROS_PER_DAY + 12 * 3_600_000_000


class FakeWindowSet:
    def __init__(self, table: FakeWindowed, key: str) -> None:
        self._table, self._key = table, key

    def __setitem__(self, window: tuple[float, float], value: Any) -> None:
        self._table.table.data[(self._key, window)] = value


class FakeInner:
    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self.data.get(key)


class FakeWindowed:
    def __init__(self) -> None:
        self.table = FakeInner()

    def __getitem__(self, key: str) -> FakeWindowSet:
        return FakeWindowSet(self, key)

    def value(self, key: str, day: int) -> Any:
        return self.table.data.get((key, day_window(day)))


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, dict[str, Any]]] = []
        self.partitions: list[int | None] = []

    async def send(
        self, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        self.sent.append((key, orjson.loads(value)))
        self.partitions.append(partition)

    def user_deltas(self) -> list[tuple[str, dict[str, Any]]]:
        """Unpack the user-rollup records into (user, delta) pairs."""
        return [
            (user, delta)
            for _key, value in self.sent
            for user, delta in value["users"].items()
        ]


class FakeUserRouter:
    """Two partitions: users whose name ends in an even digit go to 0."""

    async def partition(self, user: str) -> int:
        return int(user[-1]) % 2 if user[-1].isdigit() else 0


@dataclass
class FakeStore:
    documents: dict[str, Any] = field(default_factory=dict)
    like_counts: dict[str, int] = field(default_factory=dict)

    async def upsert_messages(self, documents: list[Any]) -> None:
        for document in documents:
            self.documents[document.message_id] = document

    async def set_like_counts(self, counts: dict[str, int]) -> None:
        self.like_counts.update(counts)


def fake_pipeline() -> Any:
    windowed = ("message_like_days", "user_days", "days")
    plain = (
        "message_authors",
        "like_state",
        "pending_likes",
        "message_likes",
        "message_views",
        "view_offsets",
        "user_totals",
    )
    tables = SimpleNamespace(
        **{name: FakeWindowed() for name in windowed},
        **{name: {} for name in plain},
    )
    topics = SimpleNamespace(
        dead_letters=FakeTopic(),
        user_rollup=FakeTopic(),
        day_rollup=FakeTopic(),
        messages=SimpleNamespace(get_topic_name=lambda: "messages"),
    )
    settings = SimpleNamespace(retention_days=30)
    return SimpleNamespace(
        tables=tables,
        topics=topics,
        store=FakeStore(),
        settings=settings,
        extras={USER_ROUTER: FakeUserRouter()},
        app=SimpleNamespace(consumer=None),
    )


class Records:
    """Builds Faust-like records with increasing offsets on one partition."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.offset = 0

    def __call__(self, value: bytes, key: bytes = b"k") -> Any:
        message = SimpleNamespace(
            topic=self.topic,
            partition=0,
            offset=self.offset,
            key=key,
            value=value,
            timestamp=1_700_000_000.0,
        )
        self.offset += 1
        return SimpleNamespace(message=message)


def like(message_id: str, user: str, kind: str = "LikeAdded", **kwargs: Any) -> Any:
    return make_event(
        kind,
        message_id=message_id,
        user=user,  # type: ignore[arg-type]
        occurred_at=NOON,
        **kwargs,
    )


async def in_batch(applying: Awaitable[None]) -> None:
    """Apply a batch as intake_batches does, then wait for its deferred writes."""
    waits: list[asyncio.Future[None]] = []
    batching._ACK_AFTER.set(waits)
    try:
        await applying
    finally:
        batching._ACK_AFTER.set(None)
    await asyncio.gather(*waits)


async def post(
    pipeline: Any,
    user: str = "author",
    body: str = "I love it",
    message_id: str | None = None,
) -> str:
    message_id = message_id or new_message_id()
    event = make_event(
        "MessagePosted", message_id=message_id, user=user, occurred_at=NOON, body=body
    )
    dead = DeadLetters(pipeline.topics.dead_letters)
    await in_batch(
        apply_message_batch(pipeline, dead, [Records("messages")(event.to_json())])
    )
    return message_id


async def apply_likes(pipeline: Any, events: list[Any], records: Records) -> None:
    dead = DeadLetters(pipeline.topics.dead_letters)
    await in_batch(
        apply_like_batch(pipeline, dead, [records(e.to_json()) for e in events])
    )


def day_totals(pipeline: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for _key, value in pipeline.topics.day_rollup.sent:
        for name, amount in value["fields"].items():
            totals[name] = totals.get(name, 0) + amount
    return totals


async def test_message_scored_and_authored() -> None:
    pipeline = fake_pipeline()
    message_id = await post(pipeline, body="I love it")
    document = pipeline.store.documents[message_id]
    assert document.compound == 0.6369
    assert document.label == "positive"
    assert pipeline.tables.message_authors[message_id]["user"] == "author"
    assert day_totals(pipeline) == {
        "messages": 1,
        "s_count": 1,
        "s_sum": 6369,
        "positive": 1,
    }


async def test_duplicate_message_event_ignored() -> None:
    pipeline = fake_pipeline()
    message_id = new_message_id()
    event = make_event(
        "MessagePosted", message_id=message_id, user="a", occurred_at=NOON, body="hello"
    )
    records = Records("messages")
    dead = DeadLetters(pipeline.topics.dead_letters)
    await in_batch(apply_message_batch(pipeline, dead, [records(event.to_json())]))
    await in_batch(apply_message_batch(pipeline, dead, [records(event.to_json())]))
    assert day_totals(pipeline)["messages"] == 1
    assert pipeline.topics.dead_letters.sent == []


async def test_second_post_of_same_id_dead_lettered() -> None:
    pipeline = fake_pipeline()
    message_id = await post(pipeline)
    other = make_event(
        "MessagePosted", message_id=message_id, user="b", occurred_at=NOON, body="again"
    )
    dead = DeadLetters(pipeline.topics.dead_letters)
    await in_batch(
        apply_message_batch(pipeline, dead, [Records("messages")(other.to_json())])
    )
    [(_key, letter)] = pipeline.topics.dead_letters.sent
    assert letter["field"] == "message_id"
    assert "already posted" in letter["error"]


@pytest.mark.parametrize(
    ("sequence", "count", "likes", "unlikes"),
    [
        (["LikeAdded", "LikeAdded"], 1, 1, 0),
        (["LikeRemoved"], 0, 0, 0),
        (["LikeAdded", "LikeRemoved", "LikeRemoved"], 0, 1, 1),
        (["LikeAdded", "LikeRemoved", "LikeAdded"], 1, 2, 1),
    ],
)
async def test_like_sequences_give_exact_counts(
    sequence: list[str], count: int, likes: int, unlikes: int
) -> None:
    pipeline = fake_pipeline()
    message_id = await post(pipeline)
    pipeline.topics.day_rollup.sent.clear()
    await apply_likes(
        pipeline, [like(message_id, "bob", kind) for kind in sequence], Records("likes")
    )
    stored = pipeline.tables.message_likes.get(message_id, {"like_count": 0})
    assert stored == {"like_count": count}
    assert pipeline.store.like_counts.get(message_id, 0) == count
    assert pipeline.tables.message_like_days.value(message_id, DAY) == (likes or None)
    totals = day_totals(pipeline)
    assert totals.get("likes", 0) == likes
    assert totals.get("unlikes", 0) == unlikes


async def test_redelivered_old_unlike_is_noop() -> None:
    pipeline = fake_pipeline()
    message_id = await post(pipeline)
    records = Records("likes")
    first_like = like(message_id, "bob")
    unlike = like(message_id, "bob", "LikeRemoved")
    second_like = like(message_id, "bob")
    await apply_likes(pipeline, [first_like, unlike, second_like], records)
    await apply_likes(pipeline, [unlike, first_like], records)
    assert pipeline.tables.message_likes[message_id] == {"like_count": 1}


async def test_likes_credit_liker_and_author() -> None:
    pipeline = fake_pipeline()
    message_id = await post(pipeline, user="carol")
    pipeline.topics.user_rollup.sent.clear()
    await apply_likes(pipeline, [like(message_id, "bob")], Records("likes"))
    sent = {
        user: delta["days"] for user, delta in pipeline.topics.user_rollup.user_deltas()
    }
    assert sent == {
        "bob": {str(DAY): {"likes_given": 1}},
        "carol": {str(DAY): {"likes_received": 1}},
    }


async def test_like_of_unknown_message_expires_to_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(likes_module, "PENDING_TTL_S", 0.0)
    pipeline = fake_pipeline()
    await apply_likes(pipeline, [like(new_message_id(), "bob")], Records("likes"))
    [(_key, letter)] = pipeline.topics.dead_letters.sent
    assert letter["field"] == "message_id"
    assert "never posted" in letter["error"]
    assert letter["partition"] == 0
    assert letter["offset"] == 0
    assert pipeline.tables.pending_likes == {}


async def test_like_before_message_applied_on_arrival() -> None:
    pipeline = fake_pipeline()
    message_id = new_message_id()
    records = Records("likes")
    await apply_likes(pipeline, [like(message_id, "bob")], records)
    await apply_likes(
        pipeline,
        [like(message_id, "bob", "LikeRemoved"), like(message_id, "eve")],
        records,
    )
    assert len(pipeline.tables.pending_likes[message_id]) == 3
    assert pipeline.tables.message_likes.get(message_id) is None

    pipeline.topics.user_rollup.sent.clear()
    await post(pipeline, user="carol", message_id=message_id)
    assert pipeline.tables.pending_likes == {}
    assert pipeline.tables.message_likes[message_id] == {"like_count": 1}
    assert pipeline.store.like_counts[message_id] == 1
    received = [
        delta["days"][str(DAY)].get("likes_received", 0)
        for user, delta in pipeline.topics.user_rollup.user_deltas()
        if user == "carol"
    ]
    assert sum(received) == 2
    assert pipeline.topics.dead_letters.sent == []


async def test_views_deduplicated_and_timed() -> None:
    pipeline = fake_pipeline()
    message_id = new_message_id()
    view = make_event(
        "ViewRecorded",
        message_id=message_id,
        user="v",
        occurred_at=NOON + 1000,
        started_at=NOON,
        duration_ms=1200,
    )
    future = make_event(
        "ViewRecorded",
        message_id=message_id,
        user="v",
        occurred_at=NOON,
        started_at=NOON + 600_000_000,
        duration_ms=10,
    )
    records = Records("views")
    dead = DeadLetters(pipeline.topics.dead_letters)
    batch = [
        records(view.to_json()),
        records(view.to_json()),
        records(future.to_json()),
        records(b"not json"),
    ]
    await apply_view_batch(pipeline, dead, batch)
    assert pipeline.tables.message_views[message_id] == {
        "view_ms": 1200,
        "views": 1,
        "recent": [view.event_id],
    }
    assert pipeline.tables.view_offsets == {"0": 3}
    letters = [value for _key, value in pipeline.topics.dead_letters.sent]
    assert [letter["offset"] for letter in letters] == [2, 3]
    assert letters[0]["field"] == "started_at"
    assert day_totals(pipeline) == {"view_ms": 1200, "views": 1}


def view_of(message_id: str, duration_ms: int) -> Any:
    return make_event(
        "ViewRecorded",
        message_id=message_id,
        user="v",
        occurred_at=NOON + 1000,
        started_at=NOON,
        duration_ms=duration_ms,
    )


async def test_redelivered_views_counted_once() -> None:
    pipeline = fake_pipeline()
    message_id = new_message_id()
    records = Records("views")
    dead = DeadLetters(pipeline.topics.dead_letters)
    first = [records(view_of(message_id, 100).to_json()) for _ in range(3)]
    first.append(records(b"not json"))
    await apply_view_batch(pipeline, dead, first)
    before = counters.value(REDELIVERED, topic="views")

    # Kafka delivers offsets 2 and 3 again, then a new view at offset 4.
    records.offset = 2
    again = [
        records(first[2].message.value),
        records(b"not json"),
        records(view_of(message_id, 7).to_json()),
    ]
    await apply_view_batch(pipeline, dead, again)
    assert pipeline.tables.message_views[message_id]["views"] == 4
    assert pipeline.tables.message_views[message_id]["view_ms"] == 307
    assert counters.value(REDELIVERED, topic="views") == before + 1
    # The invalid record at offset 3 is dead-lettered again.
    assert len(pipeline.topics.dead_letters.sent) == 2


async def test_view_copies_count_once() -> None:
    pipeline = fake_pipeline()
    message_id = new_message_id()
    records = Records("views")
    dead = DeadLetters(pipeline.topics.dead_letters)
    copied = view_of(message_id, 5)
    others = [view_of(message_id, 1) for _ in range(RECENT_VIEW_IDS - 1)]
    await apply_view_batch(pipeline, dead, [records(copied.to_json())])
    await apply_view_batch(pipeline, dead, [records(v.to_json()) for v in others])
    # The copy is among the last RECENT_VIEW_IDS ids of its message.
    await apply_view_batch(pipeline, dead, [records(copied.to_json())])
    stored = pipeline.tables.message_views[message_id]
    assert stored["views"] == RECENT_VIEW_IDS
    assert len(stored["recent"]) == RECENT_VIEW_IDS
    assert stored["recent"][0] == copied.event_id


def rollup_record(topic: str, offset: int, key: str, value: dict[str, Any]) -> Any:
    message = SimpleNamespace(
        topic=topic,
        partition=0,
        offset=offset,
        key=key.encode(),
        value=orjson.dumps(value),
    )
    return SimpleNamespace(message=message)


def test_user_rollup_skips_reprocessed_offsets() -> None:
    pipeline = fake_pipeline()
    delta = {"days": {str(DAY): {"messages": 1}}, "total": {"messages": 1}}
    apply_user_rollups(pipeline, [rollup_record("u", 5, "ann", delta)])
    apply_user_rollups(
        pipeline,
        [rollup_record("u", 5, "ann", delta), rollup_record("u", 6, "ann", delta)],
    )
    assert pipeline.tables.user_days.value("ann", DAY) == {"messages": 2, "_offset": 6}
    assert pipeline.tables.user_totals["ann"] == {"messages": 2, "_offset": 6}


async def test_user_deltas_packed_per_partition() -> None:
    pipeline = fake_pipeline()
    deltas = RollupDeltas()
    users = [f"user{index}" for index in range(2 * USERS_PER_ROLLUP_RECORD + 7)]
    for index, user in enumerate(users):
        deltas.add_user_day(user, DAY, views=index + 1)
    deltas.add_user_total("user1", messages=1)
    await deltas.send(pipeline)

    topic = pipeline.topics.user_rollup
    # 1,007 users: 504 even and 503 odd, so 2 records for each partition.
    assert sorted(topic.partitions) == [0, 0, 1, 1]
    for (key, value), partition in zip(topic.sent, topic.partitions, strict=True):
        assert key is None
        assert 0 < len(value["users"]) <= USERS_PER_ROLLUP_RECORD
        assert {int(user[-1]) % 2 for user in value["users"]} == {partition}
    unpacked = dict(topic.user_deltas())
    assert len(unpacked) == len(users)
    assert unpacked["user9"] == {"days": {str(DAY): {"views": 10}}, "total": {}}
    assert unpacked["user1"]["total"] == {"messages": 1}


def test_user_rollup_applies_packed_and_single_user_records() -> None:
    pipeline = fake_pipeline()
    packed = {
        "users": {
            "ann": {"days": {str(DAY): {"views": 2}}, "total": {}},
            "bob": {"days": {str(DAY): {"messages": 1}}, "total": {"messages": 1}},
        },
        "source_ms": None,
    }
    single = {"days": {str(DAY): {"views": 5}}, "total": {}}
    batch = [rollup_record("u", 3, "", packed), rollup_record("u", 4, "ann", single)]
    apply_user_rollups(pipeline, batch)
    apply_user_rollups(pipeline, batch)
    assert pipeline.tables.user_days.value("ann", DAY) == {"views": 7, "_offset": 4}
    assert pipeline.tables.user_days.value("bob", DAY) == {"messages": 1, "_offset": 3}
    assert pipeline.tables.user_totals == {"bob": {"messages": 1, "_offset": 3}}


def test_day_rollup_sums_batch() -> None:
    pipeline = fake_pipeline()
    key = "2024-10-04"
    batch = [
        rollup_record("d", offset, key, {"day": DAY, "fields": {"views": 2}})
        for offset in range(3)
    ]
    apply_day_rollups(pipeline, batch)
    apply_day_rollups(pipeline, batch)
    assert pipeline.tables.days.value(key, DAY) == {"views": 6, "_offset": 2}


async def test_view_below_watermark_still_applied() -> None:
    # Faust can skip a record and deliver later ones, so a record at or below
    # the last applied offset may never have been applied.
    pipeline = fake_pipeline()
    message_id = new_message_id()
    pipeline.tables.view_offsets["0"] = 10
    records = Records("views")
    records.offset = 5
    dead = DeadLetters(pipeline.topics.dead_letters)
    await apply_view_batch(pipeline, dead, [records(view_of(message_id, 9).to_json())])
    assert pipeline.tables.message_views[message_id]["views"] == 1
    assert pipeline.tables.message_views[message_id]["view_ms"] == 9
