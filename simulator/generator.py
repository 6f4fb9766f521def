"""Deterministic generation of the simulated records from a seed.

The traffic model: messages arrive through the day on a diurnal curve, and
each message gets a Zipf popularity weight that decides how many likes and
views it draws. Likes come as short per-user sequences that include double
likes and unlikes without a like. Views come in sessions of consecutive
views with log-normal durations, reported when the session ends, hours
later for a share of late sessions, or slightly before the client clock for
a share of skewed sessions. On top of the valid records come invalid
records and exact duplicates, which the analytics must ignore.

Every random draw comes from a ``random.Random`` seeded by the seed and the
name of one part of the model, so the same config gives the same records on
every run and platform.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from datetime import date
from typing import Literal

from simulator import curves
from simulator.config import SimulationConfig
from simulator.records import (
    MICROS_PER_DAY,
    MICROS_PER_SECOND,
    TOPICS,
    Record,
    day_of,
    day_start,
    encode,
    event_record,
    like_changed,
    message_posted,
    random_uuid4,
    random_uuid7,
    view_recorded,
)

MICROS_PER_MINUTE = 60 * MICROS_PER_SECOND
MICROS_PER_HOUR = 60 * MICROS_PER_MINUTE

# Exponent of the Zipf weights of user activity: a few users post, like and
# view much more than the rest.
USER_ACTIVITY_EXPONENT = 0.8
# Mean delay from a message's creation to a like of it, and between the
# steps of one user's like sequence.
LIKE_DELAY_MEAN_US = 3 * MICROS_PER_HOUR
LIKE_STEP_MEAN_US = 1 * MICROS_PER_HOUR
# Like sequences of one user on one message, with their relative weights.
LikeType = Literal["LikeAdded", "LikeRemoved"]
LIKE_PATTERNS: tuple[tuple[tuple[LikeType, ...], float], ...] = (
    (("LikeAdded",), 70.0),
    (("LikeAdded", "LikeRemoved"), 10.0),
    (("LikeAdded", "LikeRemoved", "LikeAdded"), 6.0),
    (("LikeAdded", "LikeAdded"), 5.0),
    (("LikeRemoved",), 5.0),
    (("LikeAdded", "LikeRemoved", "LikeRemoved"), 4.0),
)
# A late session is reported this long after it ended (log-normal median,
# clipped to the bounds below).
LATE_REPORT_MEDIAN_US = 3 * MICROS_PER_HOUR
LATE_REPORT_MIN_US = 1 * MICROS_PER_HOUR
LATE_REPORT_MAX_US = 20 * MICROS_PER_HOUR
# A skewed client clock runs this far ahead, inside the 5-minute limit.
SKEW_MIN_US = 30 * MICROS_PER_SECOND
SKEW_MAX_US = 4 * MICROS_PER_MINUTE
VIEW_GAP_MEDIAN_MS = 2_000.0
VIEW_MAX_FUTURE_US = 5 * MICROS_PER_MINUTE
DUPLICATE_DELAY_MAX_US = 60 * MICROS_PER_SECOND

InvalidReason = Literal[
    "malformed_json",
    "view_too_long",
    "view_starts_late",
    "like_unknown_message",
    "message_reposted",
]
INVALID_REASONS: tuple[InvalidReason, ...] = (
    "malformed_json",
    "view_too_long",
    "view_starts_late",
    "like_unknown_message",
    "message_reposted",
)


@dataclass(frozen=True, slots=True)
class Message:
    message_id: str
    author: str
    body: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Plan:
    """The generated traffic: users, days, messages and records in send order."""

    start: date
    days: list[str]
    users: list[str]
    messages: list[Message]
    records: list[Record]


def generate(config: SimulationConfig, bodies: list[str], start: date) -> Plan:
    """Generate every record of the simulation, sorted in send order."""
    generator = _Generator(config, bodies, start)
    return generator.run()


class _Generator:
    def __init__(self, config: SimulationConfig, bodies: list[str], start: date):
        self.config = config
        self.bodies = bodies
        self.start = start
        self.range_start = day_start(start)
        self.range_end = self.range_start + config.days * MICROS_PER_DAY
        self.users = [
            f"{config.user_prefix}{number:04d}" for number in range(1, config.users + 1)
        ]
        self.user_picker = curves.WeightedPicker(
            curves.zipf_weights(
                self._rng("users"), config.users, USER_ACTIVITY_EXPONENT
            )
        )
        self.messages: list[Message] = []
        self.created_times: list[int] = []

    def _rng(self, part: str) -> random.Random:
        # A string seed is hashed with SHA-512, so it is the same on every run.
        return random.Random(f"{self.config.seed}:{part}")

    def _pick_user(self, rng: random.Random) -> str:
        return self.users[self.user_picker.pick(rng)]

    def run(self) -> Plan:
        message_records = self._messages()
        self.message_picker = curves.WeightedPicker(
            curves.zipf_weights(
                self._rng("popularity"),
                len(self.messages),
                self.config.zipf_exponent,
            )
        )
        valid = message_records + self._likes() + self._views()
        valid.sort(key=lambda record: record.send_at)
        invalid = self._invalid(len(valid))
        duplicates = self._duplicates(valid)
        records = valid + invalid + duplicates
        # A stable sort keeps the valid records first among equal times.
        records.sort(key=lambda record: record.send_at)
        days = [
            day_of(self.range_start + number * MICROS_PER_DAY)
            for number in range(self.config.days)
        ]
        return Plan(self.start, days, self.users, self.messages, records)

    # ------------------------------------------------------------ messages

    def _messages(self) -> list[Record]:
        rng = self._rng("messages")
        times = []
        for day in range(self.config.days):
            midnight = self.range_start + day * MICROS_PER_DAY
            for _ in range(self.config.messages_per_day):
                times.append(midnight + curves.diurnal_offset(rng))
        times.sort()

        records = []
        for created_at in times:
            message = Message(
                message_id=random_uuid7(rng, created_at),
                author=self._pick_user(rng),
                body=rng.choice(self.bodies),
                created_at=created_at,
            )
            self.messages.append(message)
            self.created_times.append(created_at)
            event = message_posted(
                random_uuid4(rng),
                message.message_id,
                message.author,
                message.body,
                created_at,
            )
            records.append(event_record(event, created_at))
        return records

    def _message_before(self, rng: random.Random, moment: int) -> Message | None:
        """Pick a message created before ``moment``, by popularity."""
        available = bisect.bisect_left(self.created_times, moment)
        if available == 0:
            return None
        return self.messages[self.message_picker.pick(rng, available)]

    # ------------------------------------------------------------ likes

    def _likes(self) -> list[Record]:
        rng = self._rng("likes")
        patterns = [pattern for pattern, _ in LIKE_PATTERNS]
        pattern_weights = [weight for _, weight in LIKE_PATTERNS]
        total = round(len(self.messages) * self.config.likes_per_message)

        records = []
        for _ in range(total):
            message = self.messages[self.message_picker.pick(rng)]
            liker = self._pick_user(rng)
            pattern = rng.choices(patterns, pattern_weights)[0]
            moment = message.created_at + _delay(rng, LIKE_DELAY_MEAN_US)
            for event_type in pattern:
                if moment >= self.range_end:
                    break
                event = like_changed(
                    event_type,
                    random_uuid4(rng),
                    message.message_id,
                    liker,
                    moment,
                )
                records.append(event_record(event, moment))
                moment += _delay(rng, LIKE_STEP_MEAN_US)
        return records

    # ------------------------------------------------------------ views

    def _views(self) -> list[Record]:
        rng = self._rng("views")
        per_day = round(self.config.users * self.config.sessions_per_user_per_day)
        records = []
        session = 0
        for day in range(self.config.days):
            midnight = self.range_start + day * MICROS_PER_DAY
            for _ in range(per_day):
                start = midnight + curves.diurnal_offset(rng)
                records.extend(self._session(rng, session, start))
                session += 1
        return records

    def _session(self, rng: random.Random, session: int, start: int) -> list[Record]:
        """Generate the views of one session, all reported at one time."""
        viewer = self._pick_user(rng)
        count = curves.geometric_count(rng, self.config.views_per_session)
        views: list[tuple[Message, int, int]] = []
        moment = start
        for _ in range(count):
            if moment >= self.range_end:
                break
            message = self._message_before(rng, moment)
            duration_ms = curves.view_duration_ms(
                rng, self.config.view_median_ms, self.config.view_sigma
            )
            if message is not None:
                views.append((message, moment, duration_ms))
            gap_ms = curves.view_duration_ms(rng, VIEW_GAP_MEDIAN_MS, 1.0)
            moment += (duration_ms + gap_ms) * 1000
        if not views:
            return []

        _, last_start, last_duration = views[-1]
        reported_at = self._report_time(rng, last_start + last_duration * 1000)
        records = []
        for message, started_at, duration_ms in views:
            # A message must be sent before its views, and a skewed report
            # time can fall before a message that the session viewed.
            if message.created_at >= reported_at:
                continue
            event = view_recorded(
                random_uuid4(rng),
                message.message_id,
                viewer,
                started_at,
                duration_ms,
                reported_at,
            )
            records.append(event_record(event, reported_at, session))
        return records

    def _report_time(self, rng: random.Random, ended_at: int) -> int:
        """Return the occurred_at of a session that ended at ``ended_at``.

        The time is capped at the end of the last simulated day, so that a
        report never moves the retention period past the first day.
        """
        draw = rng.random()
        late_share = self.config.late_view_share
        if draw < late_share:
            lateness = rng.lognormvariate(0.0, 0.7) * LATE_REPORT_MEDIAN_US
            lateness = min(LATE_REPORT_MAX_US, max(LATE_REPORT_MIN_US, lateness))
            reported_at = ended_at + round(lateness)
        elif draw < late_share + self.config.skewed_view_share:
            reported_at = ended_at - rng.randint(SKEW_MIN_US, SKEW_MAX_US)
        else:
            reported_at = ended_at
        return min(reported_at, self.range_end - 1)

    # ------------------------------------------------------------ invalid

    def _invalid(self, valid_count: int) -> list[Record]:
        rng = self._rng("invalid")
        count = round(valid_count * self.config.invalid_share)
        records = []
        for number in range(count):
            reason = INVALID_REASONS[number % len(INVALID_REASONS)]
            records.append(self._invalid_record(rng, reason))
        return records

    def _invalid_record(self, rng: random.Random, reason: InvalidReason) -> Record:
        moment = rng.randrange(self.range_start, self.range_end)
        message = self._message_before(rng, moment)
        if message is None:
            message = self.messages[0]
            moment = message.created_at + MICROS_PER_SECOND
        user = self._pick_user(rng)
        event_id = random_uuid4(rng)
        key = message.message_id.encode("utf-8")

        if reason == "malformed_json":
            topic = rng.choice(TOPICS)
            value = self._malformed_value(rng, event_id, message, user, moment)
            return Record(topic, key, value, moment, "invalid", reason)
        if reason == "view_too_long":
            duration_ms = rng.randint(curves.VIEW_MAX_DURATION_MS + 1, 7_200_000)
            # Reported when it ends, so the record's send time is occurred_at.
            event = view_recorded(
                event_id,
                message.message_id,
                user,
                moment - duration_ms * 1000,
                duration_ms,
                moment,
            )
            return Record("views", key, encode(event), moment, "invalid", reason)
        if reason == "view_starts_late":
            started_at = moment + VIEW_MAX_FUTURE_US
            started_at += rng.randint(MICROS_PER_SECOND, 2 * MICROS_PER_HOUR)
            event = view_recorded(
                event_id, message.message_id, user, started_at, 5_000, moment
            )
            return Record("views", key, encode(event), moment, "invalid", reason)
        if reason == "like_unknown_message":
            unknown_id = random_uuid7(rng, moment)
            event = like_changed("LikeAdded", event_id, unknown_id, user, moment)
            key = unknown_id.encode("utf-8")
            return Record("likes", key, encode(event), moment, "invalid", reason)
        # The first post of a message id wins, so a later post of it is invalid.
        event = message_posted(
            event_id, message.message_id, user, rng.choice(self.bodies), moment
        )
        return Record("messages", key, encode(event), moment, "invalid", reason)

    def _malformed_value(
        self,
        rng: random.Random,
        event_id: str,
        message: Message,
        user: str,
        moment: int,
    ) -> bytes:
        event = like_changed("LikeAdded", event_id, message.message_id, user, moment)
        text = encode(event)
        if rng.random() < 0.5:
            return text[: rng.randrange(1, len(text) - 1)]
        # Latin-1 bytes are not UTF-8, so the value is not JSON text at all.
        return text.replace(b'"LikeAdded"', b'"Like\xe9Added"')

    # ------------------------------------------------------------ duplicates

    def _duplicates(self, valid: list[Record]) -> list[Record]:
        rng = self._rng("duplicates")
        count = min(len(valid), round(len(valid) * self.config.duplicate_share))
        records = []
        for original in rng.sample(valid, count):
            delay = rng.randint(1, DUPLICATE_DELAY_MAX_US)
            records.append(
                Record(
                    topic=original.topic,
                    key=original.key,
                    value=original.value,
                    send_at=original.send_at + delay,
                    kind="duplicate",
                )
            )
        return records


def _delay(rng: random.Random, mean_us: int) -> int:
    """Draw an exponential delay of at least one second."""
    return MICROS_PER_SECOND + round(rng.expovariate(1 / mean_us))
