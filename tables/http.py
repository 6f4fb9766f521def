"""HTTP views over the live tables, one endpoint per aggregate.

Reads are routed to the worker that owns the key: per-user and per-message
endpoints through Faust's ``topic_route`` on the topic whose partition contains
the key, and per-day ranges by asking the owner of each day for its values.
Routes and response bodies are listed in docs/analytics.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web
from faust.web import Request, View

from agents.batching import day_key
from app.api.errors import error_response
from app.events import InvalidEvent, date_to_day, parse_day, parse_user, parse_uuid
from app.metrics import applied_lag, rollup_lag
from app.pipeline import Pipeline
from tables.definitions import read_window

logger = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366
Handler = Callable[..., Awaitable[web.Response]]
LOCAL_DAYS_PATH = "/stats/_local/days"
DAY_FIELDS = (
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
)


def parse_range(request: Request) -> list[int]:
    """Return the days from ``from`` to ``to``, both inclusive (default today)."""
    today = date_to_day(datetime.now(UTC).date())
    query = request.query
    start = parse_day(query["from"], "from") if "from" in query else today
    end = parse_day(query["to"], "to") if "to" in query else start
    if "to" in query and "from" not in query:
        start = end
    if end < start:
        raise InvalidEvent("to", "must not be before from")
    if end - start + 1 > MAX_RANGE_DAYS:
        raise InvalidEvent("to", f"the range may span at most {MAX_RANGE_DAYS} days")
    return list(range(start, end + 1))


def json_response(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _field(value: dict[str, Any] | None, name: str) -> int:
    return int(value.get(name, 0)) if value else 0


class DayReader:
    """Reads per-day values, from this worker or from the owner of each day."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._session: aiohttp.ClientSession | None = None

    def local(self, days: list[int]) -> dict[int, dict[str, Any]]:
        table = self.pipeline.tables.days
        return {day: read_window(table, day_key(day), day) or {} for day in days}

    async def read(self, days: list[int]) -> dict[int, dict[str, Any]]:
        app = self.pipeline.app
        own_url = str(app.conf.canonical_url).rstrip("/")
        by_owner: dict[str, list[int]] = defaultdict(list)
        for day in days:
            owner = app.router.external_topic_key_store(
                self.pipeline.topics.day_rollup, day_key(day)
            )
            by_owner[str(owner).rstrip("/")].append(day)
        results: dict[int, dict[str, Any]] = {}
        remote = []
        for owner_url, owned in by_owner.items():
            if owner_url == own_url:
                results.update(self.local(owned))
            else:
                remote.append(self._fetch(owner_url, owned))
        for part in await asyncio.gather(*remote):
            results.update(part)
        return results

    async def _fetch(self, owner: str, days: list[int]) -> dict[int, dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10)
            )
        query = ",".join(day_key(day) for day in days)
        async with self._session.get(
            f"{owner}{LOCAL_DAYS_PATH}", params={"days": query}
        ) as response:
            response.raise_for_status()
            body = await response.json()
        return {parse_day(day, "days"): value for day, value in body.items()}


def register_stats_views(pipeline: Pipeline) -> None:
    app, tables, topics = pipeline.app, pipeline.tables, pipeline.topics
    # Faust types its views as returning its own Response class and taking no
    # path parameters; these views return aiohttp responses and take the key.
    route_to_owner = cast(Callable[..., Callable[[Handler], Handler]], app.topic_route)
    page = cast(Callable[..., Any], app.page)
    reader = DayReader(pipeline)
    pipeline.extras["day_reader"] = reader

    async def daily(request: Request, build: Any) -> web.Response:
        try:
            days = parse_range(request)
        except InvalidEvent as error:
            return error_response(400, error.field, error.message)
        try:
            values = await reader.read(days)
        except KeyError:
            return error_response(503, None, "partitions are not assigned yet; retry")
        except aiohttp.ClientError as error:
            logger.warning("reading days from their owner failed: %s", error)
            return error_response(503, None, f"a worker did not answer: {error}")
        rows = [{"day": day_key(day), **build(values.get(day))} for day in days]
        return json_response({"days": rows})

    @page(LOCAL_DAYS_PATH)
    class LocalDays(View):
        async def get(self, request: Request) -> web.Response:
            try:
                days = [
                    parse_day(text, "days")
                    for text in request.query.get("days", "").split(",")
                    if text
                ]
            except InvalidEvent as error:
                return error_response(400, error.field, error.message)
            values = reader.local(days)
            return json_response({day_key(day): v for day, v in values.items()})

    @page("/metrics/lag")
    class ProcessingLag(View):
        """Percentiles of this worker's processing lag, in milliseconds."""

        async def get(self, request: Request) -> web.Response:
            if request.query.get("reset") == "1":
                applied_lag.reset()
                rollup_lag.reset()
            return json_response(
                {"applied": applied_lag.summary(), "rollup": rollup_lag.summary()}
            )

    @page("/stats/messages/daily")
    class MessagesDaily(View):
        async def get(self, request: Request) -> web.Response:
            return await daily(request, lambda v: {"messages": _field(v, "messages")})

    @page("/stats/likes/daily")
    class LikesDaily(View):
        async def get(self, request: Request) -> web.Response:
            return await daily(
                request,
                lambda v: {
                    "likes": _field(v, "likes"),
                    "unlikes": _field(v, "unlikes"),
                },
            )

    @page("/stats/views/daily")
    class ViewsDaily(View):
        async def get(self, request: Request) -> web.Response:
            return await daily(
                request,
                lambda v: {
                    "view_ms": _field(v, "view_ms"),
                    "views": _field(v, "views"),
                },
            )

    @page("/stats/sentiment/daily")
    class SentimentDaily(View):
        async def get(self, request: Request) -> web.Response:
            return await daily(request, sentiment_row)

    @page("/stats/users/{user}/messages")
    class UserMessages(View):
        @route_to_owner(topics.user_rollup, match_info="user")
        async def get(self, request: Request, user: str) -> web.Response:
            return user_days(
                request,
                user,
                lambda v: {
                    "messages": _field(v, "messages"),
                },
                total=True,
            )

    @page("/stats/users/{user}/likes")
    class UserLikes(View):
        @route_to_owner(topics.user_rollup, match_info="user")
        async def get(self, request: Request, user: str) -> web.Response:
            return user_days(
                request,
                user,
                lambda v: {
                    "likes_given": _field(v, "likes_given"),
                    "likes_received": _field(v, "likes_received"),
                },
            )

    @page("/stats/users/{user}/views")
    class UserViews(View):
        @route_to_owner(topics.user_rollup, match_info="user")
        async def get(self, request: Request, user: str) -> web.Response:
            return user_days(
                request,
                user,
                lambda v: {
                    "view_ms": _field(v, "view_ms"),
                    "views": _field(v, "views"),
                },
            )

    @page("/stats/messages/{message_id}/likes")
    class MessageLikes(View):
        @route_to_owner(topics.messages, match_info="message_id")
        async def get(self, request: Request, message_id: str) -> web.Response:
            try:
                parse_uuid(message_id, "message_id")
                days = parse_range(request)
            except InvalidEvent as error:
                return error_response(400, error.field, error.message)
            stored = tables.message_likes.get(message_id)
            rows = [
                {
                    "day": day_key(day),
                    "likes": read_window(tables.message_like_days, message_id, day)
                    or 0,
                }
                for day in days
            ]
            return json_response(
                {
                    "message_id": message_id,
                    "like_count": stored["like_count"] if stored else 0,
                    "days": rows,
                }
            )

    @page("/stats/messages/{message_id}/views")
    class MessageViews(View):
        @route_to_owner(topics.messages, match_info="message_id")
        async def get(self, request: Request, message_id: str) -> web.Response:
            try:
                parse_uuid(message_id, "message_id")
            except InvalidEvent as error:
                return error_response(400, error.field, error.message)
            stored = tables.message_views.get(message_id) or {}
            return json_response(
                {
                    "message_id": message_id,
                    "view_ms": _field(stored, "view_ms"),
                    "views": _field(stored, "views"),
                }
            )

    def user_days(
        request: Request, user: str, build: Any, total: bool = False
    ) -> web.Response:
        try:
            parse_user(user, "user")
            days = parse_range(request)
        except InvalidEvent as error:
            return error_response(400, error.field, error.message)
        rows = [
            {"day": day_key(day), **build(read_window(tables.user_days, user, day))}
            for day in days
        ]
        body: dict[str, Any] = {"user": user}
        if total:
            body["total"] = _field(tables.user_totals.get(user), "messages")
        body["days"] = rows
        return json_response(body)


def sentiment_row(value: dict[str, Any] | None) -> dict[str, Any]:
    count = _field(value, "s_count")
    compound_sum = _field(value, "s_sum")
    mean = round(compound_sum / count / 10_000, 4) if count else 0.0
    return {
        "count": count,
        "compound_sum": compound_sum,
        "mean_compound": mean,
        "positive": _field(value, "positive"),
        "neutral": _field(value, "neutral"),
        "negative": _field(value, "negative"),
    }
