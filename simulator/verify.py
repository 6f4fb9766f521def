"""Compare a truth document with the live tables served over HTTP.

Every figure of the truth is read back from the endpoints listed in
``docs/analytics.md`` and compared value by value. The per-day figures of a
user or a message are sparse in the truth, so a day missing there is
expected to be 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp

logger = logging.getLogger(__name__)

# The endpoints accept at most 366 days between ``from`` and ``to``.
MAX_DAYS_PER_REQUEST = 366
REQUEST_TIMEOUT_S = 30.0
# mean_compound is a rounded float, so a last-place difference in rounding
# is allowed. Its inputs count and compound_sum are compared exactly.
MEAN_COMPOUND_TOLERANCE = 1e-4

DAILY_ENDPOINTS = {
    "messages_daily": ("/stats/messages/daily", ("messages",)),
    "likes_daily": ("/stats/likes/daily", ("likes", "unlikes")),
    "views_daily": ("/stats/views/daily", ("view_ms", "views")),
    "sentiment_daily": (
        "/stats/sentiment/daily",
        ("count", "compound_sum", "mean_compound", "positive", "neutral", "negative"),
    ),
}


class VerifyError(RuntimeError):
    """The API could not be reached at all."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure whose live value is not the expected one.

    ``actual`` is None when the response lacks the value, and the text
    ``HTTP <status>`` when the request failed.
    """

    aggregate: str
    key: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return (
            f"{self.aggregate} [{self.key}]: expected {self.expected!r}, "
            f"actual {self.actual!r}"
        )


@dataclass(slots=True)
class VerifyReport:
    differences: list[Difference] = field(default_factory=list)
    checked: int = 0
    requests: int = 0

    def summary(self) -> str:
        if not self.differences:
            return (
                f"OK: {self.checked} values from {self.requests} requests "
                "match the truth"
            )
        by_aggregate = Counter(
            difference.aggregate.split(".")[0] for difference in self.differences
        )
        counts = ", ".join(
            f"{name} {count}" for name, count in sorted(by_aggregate.items())
        )
        return (
            f"FAILED: {len(self.differences)} of {self.checked} values differ "
            f"({counts}); {self.requests} requests"
        )


def verify(truth: Mapping[str, Any], api_url: str, **options: Any) -> list[Difference]:
    """Return every difference between ``truth`` and the live tables.

    Options are those of :func:`check_truth`. Call :func:`check_truth`
    instead from code that already runs an event loop.
    """
    report = asyncio.run(check_truth(truth, api_url, **options))
    return report.differences


async def check_truth(
    truth: Mapping[str, Any],
    api_url: str,
    *,
    concurrency: int = 16,
    global_figures: bool = True,
) -> VerifyReport:
    """Query every figure of ``truth`` from the API and compare it.

    With ``global_figures`` false the per-day totals of the whole deployment
    are skipped, because other traffic on a shared deployment changes them.
    Figures keyed by a user or a message are always checked.
    """
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=api_url, timeout=timeout, connector=connector
    ) as session:
        checker = _Checker(session, api_url, truth, concurrency)
        await checker.run(global_figures)
    return checker.report


class _Checker:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_url: str,
        truth: Mapping[str, Any],
        concurrency: int,
    ) -> None:
        self.session = session
        self.api_url = api_url
        self.truth = truth
        self.figures: Mapping[str, Any] = truth["figures"]
        self.days: list[str] = list(truth["days"])
        self.windows = _day_windows(self.days)
        self.slots = asyncio.Semaphore(concurrency)
        self.report = VerifyReport()

    async def run(self, global_figures: bool) -> None:
        jobs: list[Coroutine[Any, Any, None]] = []
        if global_figures:
            for aggregate in DAILY_ENDPOINTS:
                jobs.append(self._check_daily(aggregate))
        for user in self.figures["user_messages"]:
            jobs.append(self._check_user(user))
        for message_id in self.figures["message_likes"]:
            jobs.append(self._check_message_likes(message_id))
        for message_id in self.figures["message_views"]:
            jobs.append(self._check_message_views(message_id))
        await asyncio.gather(*jobs)
        self.report.differences.sort(key=lambda item: (item.aggregate, item.key))

    # ------------------------------------------------------------ requests

    async def _get(
        self, path: str, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Return the status and JSON body of GET ``path`` (None if not JSON)."""
        async with self.slots:
            self.report.requests += 1
            try:
                async with self.session.get(path, params=params) as response:
                    if response.content_type != "application/json":
                        return response.status, None
                    return response.status, await response.json()
            except aiohttp.ClientConnectionError as error:
                raise VerifyError(
                    f"could not reach the API at {self.api_url}: {error}; "
                    "start the worker or pass --api-url"
                ) from error

    async def _get_days(
        self, path: str
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """GET a per-day endpoint over every window of days.

        Return the status, the body of the first window and the rows of all
        windows. A non-200 status stops at the first window.
        """
        first: dict[str, Any] = {}
        rows: list[dict[str, Any]] = []
        for number, (start, end) in enumerate(self.windows):
            status, body = await self._get(path, {"from": start, "to": end})
            if status != 200 or not isinstance(body, dict):
                return status, {}, []
            if number == 0:
                first = body
            rows.extend(row for row in body.get("days", []) if isinstance(row, dict))
        return 200, first, rows

    # ------------------------------------------------------------ checks

    async def _check_daily(self, aggregate: str) -> None:
        path, names = DAILY_ENDPOINTS[aggregate]
        status, _, rows = await self._get_days(path)
        if status != 200:
            self._http_error(aggregate, path, status)
            return
        actual = _rows_by_day(rows)
        for day in self.days:
            expected_row = self.figures[aggregate][day]
            for name in names:
                self._compare(
                    f"{aggregate}.{name}",
                    day,
                    expected_row[name],
                    _field(actual, day, name),
                    _mean_matches if name == "mean_compound" else None,
                )

    async def _check_user(self, user: str) -> None:
        await asyncio.gather(
            self._check_user_messages(user),
            self._check_user_days(
                user, "user_likes", "likes", ("likes_given", "likes_received")
            ),
            self._check_user_days(user, "user_views", "views", ("view_ms", "views")),
        )

    async def _check_user_messages(self, user: str) -> None:
        path = f"/stats/users/{quote(user, safe='')}/messages"
        status, body, rows = await self._get_days(path)
        if status not in (200, 404):
            self._http_error("user_messages", user, status)
            return
        expected = self.figures["user_messages"][user]
        actual_total = body.get("total") if status == 200 else 0
        self._compare("user_messages.total", user, expected["total"], actual_total)
        actual = _rows_by_day(rows)
        for day in self.days:
            self._compare(
                "user_messages.days.messages",
                f"{user}, {day}",
                expected["days"].get(day, 0),
                _field(actual, day, "messages", missing_is_zero=status == 404),
            )

    async def _check_user_days(
        self, user: str, aggregate: str, suffix: str, names: tuple[str, ...]
    ) -> None:
        path = f"/stats/users/{quote(user, safe='')}/{suffix}"
        status, _, rows = await self._get_days(path)
        if status not in (200, 404):
            self._http_error(aggregate, user, status)
            return
        expected_days = self.figures[aggregate][user]["days"]
        actual = _rows_by_day(rows)
        for day in self.days:
            expected_row = expected_days.get(day, {})
            for name in names:
                self._compare(
                    f"{aggregate}.days.{name}",
                    f"{user}, {day}",
                    expected_row.get(name, 0),
                    _field(actual, day, name, missing_is_zero=status == 404),
                )

    async def _check_message_likes(self, message_id: str) -> None:
        path = f"/stats/messages/{quote(message_id, safe='')}/likes"
        status, body, rows = await self._get_days(path)
        if status not in (200, 404):
            self._http_error("message_likes", message_id, status)
            return
        expected = self.figures["message_likes"][message_id]
        actual_count = body.get("like_count") if status == 200 else 0
        self._compare(
            "message_likes.like_count", message_id, expected["like_count"], actual_count
        )
        actual = _rows_by_day(rows)
        for day in self.days:
            self._compare(
                "message_likes.days.likes",
                f"{message_id}, {day}",
                expected["days"].get(day, 0),
                _field(actual, day, "likes", missing_is_zero=status == 404),
            )

    async def _check_message_views(self, message_id: str) -> None:
        path = f"/stats/messages/{quote(message_id, safe='')}/views"
        status, body = await self._get(path)
        if status not in (200, 404) or (status == 200 and not isinstance(body, dict)):
            self._http_error("message_views", message_id, status)
            return
        expected = self.figures["message_views"][message_id]
        for name in ("view_ms", "views"):
            actual = body.get(name) if status == 200 else 0
            self._compare(f"message_views.{name}", message_id, expected[name], actual)

    # ------------------------------------------------------------ results

    def _compare(
        self,
        aggregate: str,
        key: str,
        expected: Any,
        actual: Any,
        matches: Callable[[Any, Any], bool] | None = None,
    ) -> None:
        self.report.checked += 1
        equal = matches(expected, actual) if matches else _same_number(expected, actual)
        if not equal:
            self.report.differences.append(Difference(aggregate, key, expected, actual))

    def _http_error(self, aggregate: str, key: str, status: int) -> None:
        self.report.checked += 1
        self.report.differences.append(
            Difference(aggregate, key, "HTTP 200", f"HTTP {status}")
        )


def _same_number(expected: Any, actual: Any) -> bool:
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    return bool(expected == actual)


def _mean_matches(expected: Any, actual: Any) -> bool:
    if expected == 0 and actual is None:
        return True
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    return bool(abs(expected - actual) <= MEAN_COMPOUND_TOLERANCE)


def _rows_by_day(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row.get("day")): row for row in rows}


def _field(
    rows: dict[str, dict[str, Any]],
    day: str,
    name: str,
    *,
    missing_is_zero: bool = False,
) -> Any:
    """Return one value of a day's row; None when the row or value is missing.

    ``missing_is_zero`` is for a 404 response, which means that the API has
    no data for the key, so every value of it is 0.
    """
    if missing_is_zero:
        return 0
    row = rows.get(day)
    if row is None:
        return None
    return row.get(name)


def _day_windows(days: list[str]) -> list[tuple[str, str]]:
    """Split the span of ``days`` into ``from``/``to`` pairs the API accepts."""
    if not days:
        return []
    first = date.fromisoformat(days[0])
    last = date.fromisoformat(days[-1])
    windows = []
    while first <= last:
        end = min(last, first + timedelta(days=MAX_DAYS_PER_REQUEST - 1))
        windows.append((first.isoformat(), end.isoformat()))
        first = end + timedelta(days=1)
    return windows
