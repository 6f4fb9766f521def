"""Handlers of ``/messages/{message_id}/likes``: like and unlike by the token's user.

Both are idempotent: the like agent keeps one state per (message, user)
pair, so a second like or an unlike without a like changes nothing. A 202
response means that Kafka acknowledged the event. The message's
``like_count`` in MongoDB changes when the like agent has applied it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from app.api.context import API_CONTEXT, ApiContext
from app.api.errors import ApiError
from app.api.inputs import path_message_id, reject_body, require_user
from app.api.responses import json_response
from app.events import EventType, format_micros, make_event, uuid7_millis

# A message id whose UUIDv7 time is at most this far from now may belong to
# a message that Kafka acknowledged but the message agent has not yet written
# to MongoDB, so a like of it waits for the message before it fails with 404.
RECENT_MESSAGE_S = 60.0
MESSAGE_WAIT_S = 10.0
FIRST_POLL_S = 0.05
MAX_POLL_S = 0.5


async def put_like(request: web.Request) -> web.Response:
    return await _set_like(request, "LikeAdded", "liked")


async def delete_like(request: web.Request) -> web.Response:
    return await _set_like(request, "LikeRemoved", "not liked")


async def _set_like(
    request: web.Request, event_type: EventType, state: str
) -> web.Response:
    context = request.app[API_CONTEXT]
    user = require_user(request)
    message_id = path_message_id(request)
    reject_body(request)
    if await find_message(context, message_id) is None:
        raise ApiError(404, "message_id", f"message {message_id} was not found")

    now_us = int(context.clock() * 1_000_000)
    event = make_event(event_type, message_id=message_id, user=user, occurred_at=now_us)
    await context.publish([event])
    body = {
        "message_id": message_id,
        "user": user,
        "state": state,
        "event_id": event.event_id,
        "occurred_at": format_micros(event.occurred_at),
    }
    return json_response(body, status=202)


async def find_message(context: ApiContext, message_id: str) -> dict[str, Any] | None:
    """Return the stored message, waiting up to MESSAGE_WAIT_S for a recent id."""
    message = await _read(context, message_id)
    if message is not None or not _is_recent(context, message_id):
        return message
    deadline = time.monotonic() + MESSAGE_WAIT_S
    delay = FIRST_POLL_S
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(delay, remaining))
        message = await _read(context, message_id)
        if message is not None:
            return message
        delay = min(delay * 2, MAX_POLL_S)
    return None


def _is_recent(context: ApiContext, message_id: str) -> bool:
    millis = uuid7_millis(message_id)
    if millis is None:
        return False
    age_s = context.clock() - millis / 1000
    return abs(age_s) <= RECENT_MESSAGE_S


async def _read(context: ApiContext, message_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await context.read(
        lambda: context.store.get_message(message_id), f"message {message_id}"
    )
    return result
