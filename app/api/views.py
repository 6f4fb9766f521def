"""Handler of ``POST /views``: a batch of views of messages by the token's user.

Every view is validated through the event parser and the timing check of
the view agent, and one invalid view rejects the whole batch before any
event is written to Kafka. A view may carry its own ``event_id``, so a
client that retries a batch after a 503 does not count its views twice.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.api.context import API_CONTEXT
from app.api.errors import ApiError
from app.api.inputs import (
    check_known_fields,
    counted_rejections,
    read_json_object,
    require_user,
)
from app.api.responses import json_response
from app.events import (
    SCHEMA_VERSION,
    Event,
    InvalidEvent,
    check_view_timing,
    event_from_dict,
    format_micros,
    new_event_id,
)

MAX_VIEWS_PER_REQUEST = 500
VIEW_FIELDS = ("message_id", "started_at", "duration_ms")
OPTIONAL_VIEW_FIELDS = ("event_id",)


async def post_views(request: web.Request) -> web.Response:
    context = request.app[API_CONTEXT]
    user = require_user(request)
    now_us = int(context.clock() * 1_000_000)
    with counted_rejections("views", ("views", *VIEW_FIELDS, *OPTIONAL_VIEW_FIELDS)):
        value = await read_json_object(request)
        events = view_events(value, user, now_us, context.settings.retention_days)

    await context.publish(events)
    return json_response({"accepted": len(events)}, status=202)


def view_events(
    value: dict[str, Any], user: str, now_us: int, retention_days: int
) -> list[Event]:
    """Validate the request body and return one ViewRecorded event per view."""
    check_known_fields(value, required=("views",))
    views = value["views"]
    if not isinstance(views, list):
        raise ApiError(400, "views", "must be a JSON array of views")
    if not 1 <= len(views) <= MAX_VIEWS_PER_REQUEST:
        raise ApiError(
            400, "views",
            f"must contain 1 to {MAX_VIEWS_PER_REQUEST} views, got {len(views)}",
        )
    occurred_at = format_micros(now_us)
    return [
        _view_event(item, f"views[{index}]", user, occurred_at, retention_days)
        for index, item in enumerate(views)
    ]


def _view_event(
    item: Any, path: str, user: str, occurred_at: str, retention_days: int
) -> Event:
    if not isinstance(item, dict):
        raise ApiError(400, path, "must be a JSON object")
    check_known_fields(item, VIEW_FIELDS, OPTIONAL_VIEW_FIELDS, prefix=f"{path}.")
    record = {
        "schema_version": SCHEMA_VERSION,
        "event_id": item.get("event_id", new_event_id()),
        "type": "ViewRecorded",
        "occurred_at": occurred_at,
        "user": user,
        **{name: item[name] for name in VIEW_FIELDS},
    }
    try:
        event = event_from_dict(record, expected_topic="views")
        check_view_timing(event, retention_days)
    except InvalidEvent as error:
        raise ApiError(400, f"{path}.{error.field}", error.message) from None
    return event

