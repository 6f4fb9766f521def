"""Middleware that turns every failed request into the JSON error body.

It applies to every route of the worker's web server, the stats views and
Faust's built-in routes included. :class:`ApiError` and
:class:`InvalidEvent` keep their status and field, aiohttp's HTTP errors
(404, 405, 413) keep their status, and any other exception becomes a 500
whose traceback is logged with an error id.

NOTE: a request that aiohttp cannot parse as HTTP, such as one with a
malformed chunked body, gets aiohttp's plain-text 400 before any
middleware runs.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from app.api.errors import ApiError, error_response
from app.events import InvalidEvent
from app.metrics import counters

logger = logging.getLogger(__name__)

API_ERRORS = "socialstream_api_errors_total"
counters.describe(API_ERRORS, "HTTP requests that failed with an error response.")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as error:
        return _rejected(request, error.status, error.field, error.message,
                         error.headers)
    except InvalidEvent as error:
        return _rejected(request, 400, error.field, error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _rejected(request, error.status, None, _http_message(request, error),
                         _kept_headers(error))
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        logger.exception(
            "unhandled error %s in %s %s", error_id, request.method, request.path
        )
        counters.inc(API_ERRORS, status="500")
        return error_response(
            500, None, f"internal server error; the server logged it as {error_id}"
        )
    return response


def _rejected(
    request: web.Request,
    status: int,
    field: str | None,
    message: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    counters.inc(API_ERRORS, status=str(status))
    # Client errors are the caller's to fix, so they stay below INFO.
    logger.debug("%s %s rejected with %d: %s: %s",
                 request.method, request.path, status, field, message)
    return error_response(status, field, message, headers)


def _http_message(request: web.Request, error: web.HTTPException) -> str:
    if error.status == 404:
        return f"no route matches {request.path}; GET /openapi.json lists the routes"
    if error.status == 405:
        allowed = error.headers.get("Allow", "")
        return f"method {request.method} is not allowed here; allowed: {allowed}"
    if error.status == 413:
        return "the request body is too large"
    return error.reason


def _kept_headers(error: web.HTTPException) -> dict[str, str]:
    return {name: error.headers[name] for name in ("Allow",) if name in error.headers}
