"""Generated traffic: determinism, the event contract, order and shapes."""

from __future__ import annotations

import random
import re
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

from app.events import _FIELDS_OF_TYPE, InvalidEvent, check_view_timing, decode_event
from simulator import curves
from simulator.config import ConfigError, SimulationConfig
from simulator.corpus import load_bodies
from simulator.records import (
    FIELDS_OF_TYPE,
    MICROS_PER_DAY,
    Record,
    day_start,
    format_time,
    parse_time,
    random_uuid7,
)
from simulator.simulation import Simulation, simulate

TODAY = date(2026, 12, 3)
SMALL = SimulationConfig(seed=7, users=30, days=3, messages_per_day=60)
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
# Invalid kinds that break the event contract, and kinds that pass it but
# break an analytics rule (first post wins, likes need a posted message).
CONTRACT_INVALID = {"malformed_json", "view_too_long", "view_starts_late"}
RULE_INVALID = {"like_unknown_message", "message_reposted"}


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(SMALL, today=TODAY)


def fingerprint(records: list[Record]) -> list[tuple[object, ...]]:
    return [
        (r.topic, r.key, r.value, r.send_at, r.kind, r.reason, r.session)
        for r in records
    ]


def decode_valid(record: Record) -> None:
    """Raise InvalidEvent unless the product's parser accepts the record."""
    event = decode_event(record.value, expected_topic=record.topic)
    if event.type == "ViewRecorded":
        check_view_timing(event, retention_days=30)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_records_and_truth(simulation: Simulation) -> None:
    again = simulate(SMALL, today=TODAY)
    assert fingerprint(again.events) == fingerprint(simulation.events)
    assert again.truth == simulation.truth


def test_other_seed_differs(simulation: Simulation) -> None:
    other = simulate(
        SimulationConfig(seed=8, users=30, days=3, messages_per_day=60), today=TODAY
    )
    assert [r.value for r in other.events] != [r.value for r in simulation.events]
    assert other.truth["figures"] != simulation.truth["figures"]
    assert other.truth["message_ids"] != simulation.truth["message_ids"]


def test_default_start_ends_today() -> None:
    result = simulate(
        SimulationConfig(seed=1, users=5, days=2, messages_per_day=5), today=TODAY
    )
    assert result.plan.days == ["2026-12-02", "2026-12-03"]
    assert result.truth["config"]["start"] == "2026-12-02"


# ---------------------------------------------------------------- contract


def test_field_lists_match_contract() -> None:
    assert FIELDS_OF_TYPE == _FIELDS_OF_TYPE


def test_valid_records_pass_decode_event(simulation: Simulation) -> None:
    valid = [r for r in simulation.events if r.kind != "invalid"]
    assert len(valid) > 1000
    for record in valid:
        decode_valid(record)


def test_contract_invalid_records_fail_decode(simulation: Simulation) -> None:
    invalid = [r for r in simulation.events if r.reason in CONTRACT_INVALID]
    assert {r.reason for r in invalid} == CONTRACT_INVALID
    for record in invalid:
        with pytest.raises(InvalidEvent):
            decode_valid(record)


def test_rule_invalid_records_are_rejected(simulation: Simulation) -> None:
    """Records that pass the parser but break rule 3 or 4 of the analytics."""
    invalid = [r for r in simulation.events if r.reason in RULE_INVALID]
    assert {r.reason for r in invalid} == RULE_INVALID
    posted = {
        r.payload()["message_id"]
        for r in simulation.events
        if r.topic == "messages" and r.kind == "valid"
    }
    for record in invalid:
        decode_valid(record)
        event = record.payload()
        if record.reason == "like_unknown_message":
            assert event["message_id"] not in posted
        else:
            assert event["message_id"] in posted


def test_truth_counts_match_labels(simulation: Simulation) -> None:
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for record in simulation.events:
        labels[record.topic][record.kind] += 1
    for topic, counts in simulation.truth["sent"].items():
        assert counts["valid"] == labels[topic]["valid"], topic
        assert counts["invalid"] == labels[topic]["invalid"], topic
        assert counts["duplicate"] == labels[topic]["duplicate"], topic
        assert counts["total"] == sum(labels[topic].values()), topic


def test_ids_and_timestamps_format(simulation: Simulation) -> None:
    event_ids = set()
    for record in simulation.events:
        if record.kind != "valid":
            continue
        event = record.payload()
        assert str(uuid.UUID(event["event_id"])) == event["event_id"]
        assert event["event_id"] not in event_ids
        event_ids.add(event["event_id"])
        assert record.key == event["message_id"].encode("utf-8")
        for name in ("occurred_at", "created_at", "started_at"):
            if name in event:
                assert TIMESTAMP_RE.match(event[name]), event[name]


def test_message_ids_are_uuid7_of_creation(simulation: Simulation) -> None:
    for record in simulation.events:
        if record.topic != "messages" or record.kind != "valid":
            continue
        event = record.payload()
        parsed = uuid.UUID(event["message_id"])
        assert parsed.version == 7
        assert str(parsed) == event["message_id"]
        assert parsed.int >> 80 == parse_time(event["created_at"]) // 1000


def test_duplicates_repeat_earlier_record(simulation: Simulation) -> None:
    seen: set[bytes] = set()
    duplicates = 0
    for record in simulation.events:
        if record.kind == "duplicate":
            duplicates += 1
            assert record.value in seen
        else:
            assert record.value not in seen
            seen.add(record.value)
    assert duplicates == round(
        sum(r.kind == "valid" for r in simulation.events) * SMALL.duplicate_share
    )


# ---------------------------------------------------------------- order and time


def test_records_in_send_order(simulation: Simulation) -> None:
    times = [r.send_at for r in simulation.events]
    assert times == sorted(times)


def test_post_sent_before_likes_and_views(simulation: Simulation) -> None:
    posted: set[bytes] = set()
    for record in simulation.events:
        if record.kind != "valid":
            continue
        if record.topic == "messages":
            posted.add(record.key)
        else:
            assert record.key in posted


def test_skewed_sessions_keep_post_first() -> None:
    """A skewed report time can precede a message that the session viewed."""
    config = SimulationConfig(
        seed=0,
        users=50,
        days=1,
        messages_per_day=4,
        sessions_per_user_per_day=20,
        skewed_view_share=1.0,
        late_view_share=0.0,
        likes_per_message=0.0,
        invalid_share=0.0,
        duplicate_share=0.0,
    )
    posted: set[bytes] = set()
    for record in simulate(config, today=TODAY).events:
        if record.topic == "messages":
            posted.add(record.key)
        else:
            assert record.key in posted


def test_message_events_in_time_order(simulation: Simulation) -> None:
    last_time: dict[bytes, int] = {}
    for record in simulation.events:
        if record.kind != "valid":
            continue
        occurred_at = parse_time(record.payload()["occurred_at"])
        assert occurred_at == record.send_at
        assert occurred_at >= last_time.get(record.key, 0)
        last_time[record.key] = occurred_at


def test_send_time_is_occurred_at(simulation: Simulation) -> None:
    for record in simulation.events:
        if record.kind == "duplicate" or record.reason == "malformed_json":
            continue
        assert record.send_at == parse_time(record.payload()["occurred_at"])


def test_event_times_inside_simulated_days(simulation: Simulation) -> None:
    first = day_start(date(2026, 12, 1))
    end = first + 3 * MICROS_PER_DAY
    for record in simulation.events:
        if record.kind != "valid":
            continue
        event = record.payload()
        event_time = event.get("created_at") or event.get("started_at")
        assert first <= parse_time(event_time or event["occurred_at"]) < end
        assert first <= parse_time(event["occurred_at"]) < end


def test_late_and_skewed_views_present(simulation: Simulation) -> None:
    late = skewed = 0
    for record in simulation.events:
        if record.topic != "views" or record.kind != "valid":
            continue
        event = record.payload()
        started = parse_time(event["started_at"])
        occurred = parse_time(event["occurred_at"])
        if occurred - started >= 3600 * 1_000_000 + event["duration_ms"] * 1000:
            late += 1
        if started > occurred:
            skewed += 1
            assert started - occurred <= 5 * 60 * 1_000_000
    assert late > 0
    assert skewed > 0


def test_like_sequences_present(simulation: Simulation) -> None:
    sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in simulation.events:
        if record.topic == "likes" and record.kind == "valid":
            event = record.payload()
            sequences[(event["message_id"], event["user"])].append(event["type"])
    assert any(s[:2] == ["LikeAdded", "LikeAdded"] for s in sequences.values())
    assert any(s[0] == "LikeRemoved" for s in sequences.values())
    assert any(
        s[:3] == ["LikeAdded", "LikeRemoved", "LikeRemoved"] for s in sequences.values()
    )


# ---------------------------------------------------------------- shapes


def test_popularity_is_skewed() -> None:
    result = simulate(
        SimulationConfig(seed=3, users=100, days=2, messages_per_day=300), today=TODAY
    )
    views = sorted(
        (row["views"] for row in result.truth["figures"]["message_views"].values()),
        reverse=True,
    )
    top = len(views) // 10
    # Uniform popularity would give the top tenth about 10% of the views.
    assert sum(views[:top]) / sum(views) > 0.4


def test_messages_follow_diurnal_curve() -> None:
    result = simulate(
        SimulationConfig(seed=3, users=20, days=3, messages_per_day=400), today=TODAY
    )
    hours: Counter[int] = Counter()
    for record in result.events:
        if record.topic == "messages" and record.kind == "valid":
            created_at = parse_time(record.payload()["created_at"])
            hours[created_at % MICROS_PER_DAY // (3600 * 1_000_000)] += 1
    evening = sum(hours[hour] for hour in (19, 20, 21, 22))
    night = sum(hours[hour] for hour in (2, 3, 4, 5))
    assert evening > 3 * night


def test_diurnal_weight_shape() -> None:
    assert curves.diurnal_weight(20.5) > 4 * curves.diurnal_weight(4.0)
    assert curves.diurnal_weight(12.5) > curves.diurnal_weight(16.5)
    assert curves.diurnal_weight(0.0) == pytest.approx(curves.diurnal_weight(24.0))


def test_view_durations_log_normal() -> None:
    rng = random.Random(5)
    durations = [curves.view_duration_ms(rng, 6_000.0, 1.3) for _ in range(20_000)]
    assert 5_000 < statistics.median(durations) < 7_000
    assert statistics.mean(durations) > 1.5 * statistics.median(durations)
    assert min(durations) >= 1
    assert max(durations) <= 3_600_000


def test_view_duration_clipped() -> None:
    rng = random.Random(5)
    assert curves.view_duration_ms(rng, 1e12, 0.0) == 3_600_000
    assert curves.view_duration_ms(rng, 1e-6, 0.0) == 1


def test_weighted_picker_respects_prefix() -> None:
    picker = curves.WeightedPicker([1.0, 1.0, 100.0])
    rng = random.Random(1)
    picks = [picker.pick(rng, available=2) for _ in range(1000)]
    assert set(picks) == {0, 1}
    assert Counter(picker.pick(rng) for _ in range(1000))[2] > 900


# ---------------------------------------------------------------- helpers


def test_format_time_example() -> None:
    micros = parse_time("2026-12-01T10:15:00.123456Z")
    assert format_time(micros) == "2026-12-01T10:15:00.123456Z"
    assert parse_time("2026-12-01T11:15:00.123456+01:00") == micros


def test_uuid7_from_seeded_rng() -> None:
    first = random_uuid7(random.Random(1), 1_764_000_000_000_000)
    assert first == random_uuid7(random.Random(1), 1_764_000_000_000_000)
    assert uuid.UUID(first).version == 7
    assert first == first.lower()


def test_corpus_cut_and_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text(
        f"1\t0.5\t{'a' * 1200}\n2\t0.1\t   \n3\t-1\tfine text\n\n", encoding="utf-8"
    )
    bodies = load_bodies(corpus)
    assert bodies == ["a" * 1000, "fine text"]


def test_corpus_bad_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("1\tonly two columns\n", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus.tsv:1"):
        load_bodies(corpus)


def test_bundled_corpus_loads() -> None:
    bodies = load_bodies()
    assert len(bodies) == 4200
    assert all(body.strip() and len(body) <= 1000 for body in bodies)


# ---------------------------------------------------------------- config


def test_start_before_retention_rejected() -> None:
    config = SimulationConfig(days=3, start=date(2026, 11, 1))
    with pytest.raises(ConfigError, match="retention"):
        config.validate(TODAY)


def test_days_after_today_rejected() -> None:
    config = SimulationConfig(days=3, start=date(2026, 12, 2))
    with pytest.raises(ConfigError, match="after today"):
        config.validate(TODAY)


def test_oldest_allowed_start_accepted() -> None:
    SimulationConfig(days=30, start=date(2026, 11, 4)).validate(TODAY)


@pytest.mark.parametrize(
    "changes",
    [
        {"users": 0},
        {"days": 31},
        {"messages_per_day": 0},
        {"invalid_share": 1.5},
        {"user_prefix": "bad prefix"},
        {"views_per_session": 0.5},
    ],
)
def test_invalid_config_rejected(changes: dict[str, object]) -> None:
    config = SimulationConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        config.validate(TODAY)
