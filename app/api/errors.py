"""The JSON error body that every endpoint returns for a rejected request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web


class ApiError(Exception):
    """A request that the API rejects with ``status``; ``field`` names the input.

    Handlers raise it, and the error middleware turns it into the JSON body of
    :func:`error_body` with ``headers`` added to the response.
    """

    def __init__(
        self,
        status: int,
        field: str | None,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        self.headers = dict(headers or {})


def error_body(status: int, field: str | None, message: str) -> dict[str, Any]:
    """Return ``{"error": {"status", "field", "message"}}``."""
    return {"error": {"status": status, "field": field, "message": message}}


def error_response(
    status: int,
    field: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        body=orjson.dumps(error_body(status, field, message)),
        status=status,
        content_type="application/json",
        headers=headers,
    )
