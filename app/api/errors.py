"""The JSON error body that every endpoint returns for a rejected request."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def error_body(status: int, field: str | None, message: str) -> dict[str, Any]:
    """Return ``{"error": {"status", "field", "message"}}``."""
    return {"error": {"status": status, "field": field, "message": message}}


def error_response(status: int, field: str | None, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(error_body(status, field, message)),
        status=status,
        content_type="application/json",
    )
