"""The expected value of every figure of ``docs/analytics.md`` for a record list.

This module reads the event contract on its own and shares no code with the
agents or with ``app.events``. A difference between its figures and the live
tables or the batch layer therefore points at a bug in one of them, and not
at a helper that both use.

Records are applied in the order given, which must be the order in which
they were sent. Records of one message share a key and so a partition, so
send order is their offset order.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cache
from typing import Any, Literal, Protocol

from simulator.records import (
    FIELDS_OF_TYPE,
    MICROS_PER_DAY,
    TOPIC_OF_TYPE,
    TOPICS,
    day_of,
    parse_time,
)

TRUTH_FORMAT = "socialstream-simulator-truth"
TRUTH_VERSION = 1

BODY_MAX_CHARS = 1000
VIEW_MAX_DURATION_MS = 3_600_000
VIEW_MAX_FUTURE_US = 5 * 60 * 1_000_000
# Epoch milliseconds below this (1973-03-03) are taken for a value in seconds.
MIN_EPOCH_MILLIS = 100_000_000_000
# VADER's standard label thresholds, in compound units of 0.0001.
POSITIVE_MIN_UNITS = 500
NEGATIVE_MAX_UNITS = -500

_USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

Outcome = Literal["valid", "invalid", "duplicate"]


class RecordLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def value(self) -> bytes: ...


class Rejected(ValueError):
    """A record breaks the event contract or an analytics rule."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The fields of a valid event that the figures use. Times are epoch µs."""

    type: str
    event_id: str
    message_id: str
    user: str
    occurred_at: int
    event_time: int
    body: str | None = None
    duration_ms: int | None = None

    @property
    def day(self) -> str:
        return day_of(self.event_time)


# ---------------------------------------------------------------- contract


def read_event(topic: str, value: bytes, retention_days: int) -> Accepted:
    """Validate one record value for ``topic``; raise Rejected with the reason."""
    try:
        text = value.decode("utf-8")
        document = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected(f"not UTF-8 JSON: {error}") from None
    if not isinstance(document, dict):
        raise Rejected("not a JSON object")
    event_type = document.get("type")
    if not isinstance(event_type, str) or event_type not in FIELDS_OF_TYPE:
        raise Rejected(f"unknown type {event_type!r}")
    if TOPIC_OF_TYPE[event_type] != topic:
        raise Rejected(f"{event_type} on topic {topic!r}")
    if set(document) != set(FIELDS_OF_TYPE[event_type]):
        raise Rejected("missing or unknown fields")
    version = document["schema_version"]
    if type(version) is not int or version != 1:
        raise Rejected(f"schema_version {version!r}")

    occurred_at = _timestamp(document["occurred_at"], "occurred_at")
    event = Accepted(
        type=event_type,
        event_id=_uuid(document["event_id"], "event_id"),
        message_id=_uuid(document["message_id"], "message_id"),
        user=_user(document["user"]),
        occurred_at=occurred_at,
        event_time=occurred_at,
    )
    if event_type == "MessagePosted":
        created_at = _timestamp(document["created_at"], "created_at")
        if created_at != occurred_at:
            raise Rejected("created_at differs from occurred_at")
        return replace(event, body=_body(document["body"]))
    if event_type == "ViewRecorded":
        started_at = _timestamp(document["started_at"], "started_at", millis=True)
        duration_ms = _duration(document["duration_ms"])
        _check_view_time(started_at, occurred_at, retention_days)
        return replace(event, event_time=started_at, duration_ms=duration_ms)
    return event


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def _uuid(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise Rejected(f"{field} is not a string")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise Rejected(f"{field} is not a UUID") from None
    if canonical != value:
        raise Rejected(f"{field} is not a canonical lower-case UUID")
    return value


def _user(value: Any) -> str:
    if not isinstance(value, str) or not _USER_RE.match(value):
        raise Rejected("user is not a valid user name")
    return value


def _body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("body is empty or not a string")
    if len(value) > BODY_MAX_CHARS or "\x00" in value:
        raise Rejected("body is too long or contains NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("body contains a lone surrogate") from None
    return value


def _duration(value: Any) -> int:
    if type(value) is not int:
        raise Rejected("duration_ms is not an integer")
    if not 0 < value <= VIEW_MAX_DURATION_MS:
        raise Rejected(f"duration_ms {value} is outside 1..{VIEW_MAX_DURATION_MS}")
    return value


def _timestamp(value: Any, field: str, *, millis: bool = False) -> int:
    if millis and type(value) is int:
        if value < MIN_EPOCH_MILLIS:
            raise Rejected(f"{field} looks like epoch seconds")
        return value * 1000
    if not isinstance(value, str) or not _TIMESTAMP_RE.match(value):
        raise Rejected(f"{field} is not an RFC 3339 timestamp with an offset")
    try:
        return parse_time(value)
    except ValueError:
        raise Rejected(f"{field} is not a valid date and time") from None


def _check_view_time(started_at: int, occurred_at: int, retention_days: int) -> None:
    if started_at > occurred_at + VIEW_MAX_FUTURE_US:
        raise Rejected("view starts more than 5 minutes after it was reported")
    oldest_day = occurred_at // MICROS_PER_DAY - retention_days + 1
    if started_at // MICROS_PER_DAY < oldest_day:
        raise Rejected("view starts before the retention period")


# ---------------------------------------------------------------- figures


class _Tally:
    """Running figures over the accepted events, in send order."""

    def __init__(self) -> None:
        self.seen_ids: dict[str, set[str]] = {topic: set() for topic in TOPICS}
        self.authors: dict[str, str] = {}
        self.message_order: list[str] = []
        self.liked: set[tuple[str, str]] = set()
        self.event_days: set[str] = set()
        self.event_users: set[str] = set()

        self.messages_daily: dict[str, int] = defaultdict(int)
        self.user_messages: dict[str, dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.sentiment: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        self.like_count: dict[str, int] = defaultdict(int)
        self.message_like_days: dict[str, dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.likes_daily: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.likes_given: dict[str, dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.likes_received: dict[str, dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.message_views: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.user_views: dict[str, dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0])
        )
        self.views_daily: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def apply(self, topic: str, event: Accepted) -> Outcome:
        """Apply one valid event and return how the analytics count it."""
        # NOTE: an event id counts as seen once its record passed the contract
        # check, also when rules 3 and 4 reject it. The simulator never reuses
        # the event id of a rejected record, so the live tables cannot differ
        # from this reading on simulated data.
        if event.event_id in self.seen_ids[topic]:
            return "duplicate"
        self.seen_ids[topic].add(event.event_id)
        if event.type == "MessagePosted":
            return self._message(event)
        if event.type == "ViewRecorded":
            return self._view(event)
        return self._like(event)

    def _message(self, event: Accepted) -> Outcome:
        if event.message_id in self.authors:
            return "invalid"
        assert event.body is not None
        self.authors[event.message_id] = event.user
        self.message_order.append(event.message_id)
        self._note(event)
        self.messages_daily[event.day] += 1
        self.user_messages[event.user][event.day] += 1
        units = compound_units(event.body)
        row = self.sentiment[event.day]
        row[0] += 1
        row[1] += units
        if units >= POSITIVE_MIN_UNITS:
            row[2] += 1
        elif units <= NEGATIVE_MAX_UNITS:
            row[4] += 1
        else:
            row[3] += 1
        return "valid"

    def _like(self, event: Accepted) -> Outcome:
        # NOTE: "never posted" is read as "not posted earlier in send order".
        # The simulator sends every post before the likes of its message, so
        # on simulated data this is the same as "posted nowhere".
        author = self.authors.get(event.message_id)
        if author is None:
            return "invalid"
        self._note(event)
        pair = (event.message_id, event.user)
        if event.type == "LikeAdded" and pair not in self.liked:
            self.liked.add(pair)
            self.like_count[event.message_id] += 1
            self.message_like_days[event.message_id][event.day] += 1
            self.likes_daily[event.day][0] += 1
            self.likes_given[event.user][event.day] += 1
            self.likes_received[author][event.day] += 1
        elif event.type == "LikeRemoved" and pair in self.liked:
            self.liked.remove(pair)
            self.like_count[event.message_id] -= 1
            self.likes_daily[event.day][1] += 1
        return "valid"

    def _view(self, event: Accepted) -> Outcome:
        # A view of a message that was never posted still counts, because
        # rule 4 of the analytics rejects only likes and unlikes of one.
        assert event.duration_ms is not None
        self._note(event)
        for totals in (
            self.message_views[event.message_id],
            self.user_views[event.user][event.day],
            self.views_daily[event.day],
        ):
            totals[0] += event.duration_ms
            totals[1] += 1
        return "valid"

    def _note(self, event: Accepted) -> None:
        self.event_days.add(event.day)
        self.event_users.add(event.user)


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@cache
def compound_units(body: str) -> int:
    """Return VADER's compound score of ``body`` in units of 0.0001."""
    compound: float = _analyzer().polarity_scores(body)["compound"]
    return round(compound * 10_000)


def mean_compound(compound_sum: int, count: int) -> float:
    """Return the mean compound score, rounded to 4 places; 0.0 for no messages."""
    if count == 0:
        return 0.0
    return round(compound_sum / count / 10_000, 4)


# ---------------------------------------------------------------- truth


def compute_truth(
    records: Iterable[RecordLike],
    *,
    retention_days: int = 30,
    days: Sequence[str] | None = None,
    users: Sequence[str] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute the truth document of records given in send order.

    ``days`` and ``users`` list what the simulation covers; every day and
    user of an accepted event is added to them. The document's layout is
    described in ``docs/simulator.md``.
    """
    tally = _Tally()
    sent = {
        topic: {"valid": 0, "invalid": 0, "duplicate": 0, "total": 0}
        for topic in TOPICS
    }
    for record in records:
        try:
            event = read_event(record.topic, record.value, retention_days)
        except Rejected:
            outcome: Outcome = "invalid"
        else:
            outcome = tally.apply(record.topic, event)
        sent[record.topic][outcome] += 1
        sent[record.topic]["total"] += 1

    all_days = _day_range(set(days or ()) | tally.event_days)
    all_users = sorted(set(users or ()) | tally.event_users)
    return {
        "format": TRUTH_FORMAT,
        "version": TRUTH_VERSION,
        "config": config or {},
        "retention_days": retention_days,
        "days": all_days,
        "users": all_users,
        "message_ids": list(tally.message_order),
        "sent": sent,
        "figures": _figures(tally, all_days, all_users),
    }


def _day_range(days: set[str]) -> list[str]:
    """Return every day from the first to the last of ``days``, in order."""
    if not days:
        return []
    first = date.fromisoformat(min(days))
    last = date.fromisoformat(max(days))
    count = (last - first).days + 1
    return [(first + timedelta(days=number)).isoformat() for number in range(count)]


def _figures(
    tally: _Tally, days: list[str], users: list[str]
) -> dict[str, dict[str, Any]]:
    return {
        "messages_daily": {
            day: {"messages": tally.messages_daily.get(day, 0)} for day in days
        },
        "likes_daily": {
            day: _likes_row(tally.likes_daily.get(day, [0, 0])) for day in days
        },
        "views_daily": {
            day: _views_row(tally.views_daily.get(day, [0, 0])) for day in days
        },
        "sentiment_daily": {
            day: _sentiment_row(tally.sentiment.get(day, [0, 0, 0, 0, 0]))
            for day in days
        },
        "user_messages": {
            user: {
                "total": sum(tally.user_messages[user].values()),
                "days": _sorted(tally.user_messages[user]),
            }
            for user in users
        },
        "user_likes": {user: {"days": _user_like_days(tally, user)} for user in users},
        "user_views": {
            user: {
                "days": {
                    day: _views_row(totals)
                    for day, totals in sorted(tally.user_views[user].items())
                }
            }
            for user in users
        },
        "message_likes": {
            message_id: {
                "like_count": tally.like_count.get(message_id, 0),
                "days": _sorted(tally.message_like_days.get(message_id, {})),
            }
            for message_id in tally.message_order
        },
        "message_views": {
            message_id: _views_row(tally.message_views.get(message_id, [0, 0]))
            for message_id in _message_view_keys(tally)
        },
    }


def _message_view_keys(tally: _Tally) -> list[str]:
    """Return posted messages in send order, then viewed ids never posted."""
    unposted = sorted(set(tally.message_views) - set(tally.authors))
    return tally.message_order + unposted


def _user_like_days(tally: _Tally, user: str) -> dict[str, dict[str, int]]:
    given_by_day = tally.likes_given.get(user, {})
    received_by_day = tally.likes_received.get(user, {})
    return {
        day: {
            "likes_given": given_by_day.get(day, 0),
            "likes_received": received_by_day.get(day, 0),
        }
        for day in sorted(set(given_by_day) | set(received_by_day))
    }


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    return {day: counts[day] for day in sorted(counts)}


def _likes_row(totals: list[int]) -> dict[str, int]:
    return {"likes": totals[0], "unlikes": totals[1]}


def _views_row(totals: list[int]) -> dict[str, int]:
    return {"view_ms": totals[0], "views": totals[1]}


def _sentiment_row(totals: list[int]) -> dict[str, Any]:
    count, compound_sum, positive, neutral, negative = totals
    return {
        "count": count,
        "compound_sum": compound_sum,
        "mean_compound": mean_compound(compound_sum, count),
        "positive": positive,
        "neutral": neutral,
        "negative": negative,
    }
