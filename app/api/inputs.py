"""Parsing of request bodies, query strings, path segments and bearer tokens.

Every function raises :class:`ApiError` naming the offending input, so a
handler never receives a value that it would have to check again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

from app.api.context import API_CONTEXT
from app.api.errors import ApiError
from app.auth import InvalidToken, verify_token
from app.events import InvalidEvent, parse_user, parse_uuid
from app.metrics import REJECTED, counters
from app.store import InvalidCursor, decode_cursor

MAX_BODY_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_CHARS = 512
REALM = 'Bearer realm="socialstream"'
INVALID_TOKEN_CHALLENGE = f'{REALM}, error="invalid_token"'
# The JSON path of the whole request body in error messages.
ROOT = "$"

_LIMIT_RE = re.compile(r"^[0-9]{1,4}$")
_INDEX_RE = re.compile(r"\[[0-9]+\]")


# ---------------------------------------------------------------- bodies


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read a JSON object body of at most ``MAX_BODY_BYTES`` bytes."""
    check_json_content_type(request)
    raw = await read_body(request)
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise ApiError(400, ROOT, "the request body must be a JSON object")
    return value


def check_json_content_type(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise ApiError(
            415, "Content-Type",
            f"must be application/json, got {request.content_type!r}",
        )
    charset = request.charset
    if charset is not None and charset.lower() not in {"utf-8", "utf8"}:
        raise ApiError(
            415, "Content-Type", f"the charset must be utf-8, got {charset!r}"
        )


async def read_body(request: web.Request) -> bytes:
    """Read the body, rejecting it with 413 as soon as it passes the limit."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def reject_body(request: web.Request) -> None:
    """Reject a request that carries a body where the route takes none."""
    if request.content_length or request.body_exists:
        raise ApiError(400, ROOT, "this request takes no body; send none")


def _too_large() -> ApiError:
    return ApiError(
        413, ROOT, f"the request body must be at most {MAX_BODY_BYTES} bytes (1 MiB)"
    )


def parse_json(raw: bytes) -> Any:
    """Parse RFC 8259 JSON with orjson, explaining what it rejected."""
    if not raw.strip():
        raise ApiError(400, ROOT, "the request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, ROOT, _explain_json_error(raw, error)) from None


def _explain_json_error(raw: bytes, error: orjson.JSONDecodeError) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as invalid:
        return f"is not valid UTF-8 at byte {invalid.start}; send UTF-8 text"
    reason, position = error.msg, error.pos
    if "surrogate" in reason:
        return (
            f"is not valid JSON at character {position}: a lone UTF-16 surrogate "
            "escape such as \\ud800 is not a Unicode character, so the parser "
            "(orjson) rejects it; send the character itself or a complete "
            "surrogate pair"
        )
    if "infinity" in reason:
        return (
            f"is not valid JSON at character {position}: the number is too large "
            "for a 64-bit float"
        )
    # orjson counts positions in characters, not bytes.
    near = text[max(position - 1, 0):position + 9]
    if "NaN" in near or "Infinity" in near:
        return (
            f"is not valid JSON at character {position}: NaN and Infinity are "
            "not JSON numbers (RFC 8259); send a finite number"
        )
    return f"is not valid JSON at character {position}: {reason}"


def check_known_fields(
    value: dict[str, Any],
    required: Iterable[str],
    optional: Iterable[str] = (),
    prefix: str = "",
) -> None:
    """Reject missing required fields and fields that are not listed."""
    required = tuple(required)
    allowed = (*required, *optional)
    for name in required:
        if name not in value:
            raise ApiError(400, prefix + name, "is required")
    for name in value:
        if name not in allowed:
            raise ApiError(
                400, prefix + name,
                f"is not a known field; allowed: {', '.join(allowed)}",
            )


@contextmanager
def counted_rejections(topic: str, fields: Iterable[str]) -> Iterator[None]:
    """Count each ApiError raised in the block as a rejected event of ``topic``.

    The ``reason`` label is the field name without its item index, one of
    ``fields``, or ``json``, ``content_type`` or ``unknown_field``, so a
    client cannot create new label values.
    """
    known = set(fields)
    try:
        yield
    except ApiError as error:
        counters.inc(REJECTED, topic=topic, reason=_reason(error.field, known))
        raise


def _reason(field: str | None, known: set[str]) -> str:
    name = _INDEX_RE.sub("", field or "").rpartition(".")[2]
    if name in known:
        return name
    if name == ROOT:
        return "json"
    if name == "Content-Type":
        return "content_type"
    return "unknown_field"


# ---------------------------------------------------------------- query and path


def parse_page_query(request: web.Request) -> tuple[int, str | None]:
    """Return ``limit`` (1 to 100, default 20) and ``cursor`` from the query."""
    query = request.query
    for name in query:
        if name not in {"limit", "cursor"}:
            raise ApiError(
                400, name, "is not a known query parameter; allowed: limit, cursor"
            )
        if len(query.getall(name)) > 1:
            raise ApiError(400, name, "must be given at most once")
    limit = _parse_limit(query.get("limit"))
    cursor = query.get("cursor")
    if cursor is not None:
        _check_cursor(cursor)
    return limit, cursor


def _parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not _LIMIT_RE.match(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(
            400, "limit", f"must be an integer from 1 to {MAX_LIMIT}, got {text[:20]!r}"
        )
    return int(text)


def _check_cursor(cursor: str) -> None:
    message = "is not a cursor returned as next_cursor by this endpoint"
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise ApiError(400, "cursor", message)
    try:
        decode_cursor(cursor)
    except InvalidCursor:
        raise ApiError(400, "cursor", message) from None


def path_message_id(request: web.Request) -> str:
    return _from_path(request, "message_id", parse_uuid)


def path_user(request: web.Request) -> str:
    return _from_path(request, "user", parse_user)


def _from_path(request: web.Request, name: str, parse: Any) -> str:
    try:
        return str(parse(request.match_info[name], name))
    except InvalidEvent as error:
        raise ApiError(400, error.field, error.message) from None


# ---------------------------------------------------------------- identity


def require_user(request: web.Request) -> str:
    """Return the user of the request's bearer token; raise 401 without one."""
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(
            401, "Authorization",
            "is missing; send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": REALM},
        )
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "Authorization",
            "must be 'Bearer <token>' with a JSON Web Token",
            headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        )
    settings = request.app[API_CONTEXT].settings
    if not settings.jwt_secret:
        raise ApiError(
            503, "Authorization",
            "the server has no SOCIALSTREAM_JWT_SECRET, so it accepts no tokens",
        )
    try:
        return verify_token(settings, token)
    except InvalidToken as error:
        raise ApiError(
            401, "Authorization", str(error),
            headers={"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        ) from None
