"""Handlers of ``/messages`` and ``/users/{user}/messages``: post and read the feed.

The response to a posted message is built from the event once Kafka
acknowledged it, so its ``sentiment`` is ``null`` and its ``like_count`` 0.
The message agent then scores it and writes it to MongoDB, where the reads
find it, normally within a second.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.api.context import API_CONTEXT
from app.api.errors import ApiError
from app.api.inputs import (
    check_known_fields,
    counted_rejections,
    parse_page_query,
    path_message_id,
    path_user,
    read_json_object,
    require_user,
)
from app.api.responses import json_response
from app.events import (
    SCHEMA_VERSION,
    Event,
    InvalidEvent,
    event_from_dict,
    format_micros,
    new_event_id,
    new_message_id,
)
from app.store import Page


async def post_message(request: web.Request) -> web.Response:
    context = request.app[API_CONTEXT]
    user = require_user(request)
    with counted_rejections("messages", ("body",)):
        value = await read_json_object(request)
        check_known_fields(value, required=("body",))
        event = _message_event(user, value["body"], int(context.clock() * 1_000_000))

    await context.publish([event])
    return json_response(
        message_body(event),
        status=201,
        headers={"Location": f"/messages/{event.message_id}"},
    )


def _message_event(user: str, body: Any, now_us: int) -> Event:
    """Validate the body through the event parser that the agents use."""
    now = format_micros(now_us)
    record = {
        "schema_version": SCHEMA_VERSION,
        "event_id": new_event_id(),
        "type": "MessagePosted",
        "occurred_at": now,
        "message_id": new_message_id(),
        "user": user,
        "body": body,
        "created_at": now,
    }
    try:
        return event_from_dict(record, expected_topic="messages")
    except InvalidEvent as error:
        raise ApiError(400, error.field, error.message) from None


def message_body(event: Event) -> dict[str, Any]:
    """Return the API representation of a message that is not yet processed."""
    assert event.created_at is not None
    return {
        "message_id": event.message_id,
        "user": event.user,
        "body": event.body,
        "created_at": format_micros(event.created_at),
        "like_count": 0,
        "sentiment": None,
    }


async def get_feed(request: web.Request) -> web.Response:
    context = request.app[API_CONTEXT]
    limit, cursor = parse_page_query(request)
    page = await context.read(lambda: context.store.feed(limit, cursor), "the feed")
    return json_response(page_body(page))


async def get_user_messages(request: web.Request) -> web.Response:
    context = request.app[API_CONTEXT]
    user = path_user(request)
    limit, cursor = parse_page_query(request)
    page = await context.read(
        lambda: context.store.user_messages(user, limit, cursor),
        f"messages of user {user}",
    )
    return json_response(page_body(page))


async def get_message(request: web.Request) -> web.Response:
    context = request.app[API_CONTEXT]
    message_id = path_message_id(request)
    message = await context.read(
        lambda: context.store.get_message(message_id), f"message {message_id}"
    )
    if message is None:
        raise ApiError(404, "message_id", f"message {message_id} was not found")
    return json_response(message)


def page_body(page: Page) -> dict[str, Any]:
    return {"messages": page.items, "next_cursor": page.next_cursor}
