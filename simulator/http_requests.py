"""Requests of the HTTP API built from simulated records, and bearer tokens.

The API contract:

- ``POST /messages {"body"}`` responds with 201, ``message_id`` and
  ``created_at``.
- ``PUT`` and ``DELETE /messages/{message_id}/likes`` like and unlike as
  the token's user, and respond with 2xx and the ``occurred_at`` stamped.
- ``POST /views {"views": [{"message_id", "started_at", "duration_ms"}]}``
  responds with 202.

The server stamps messages and likes with its own clock, so only view
times come from the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jwt

from simulator.records import Record, format_time, parse_time

TOKEN_LIFETIME_S = 3600
# A cached token is replaced when it expires within this many seconds.
TOKEN_RENEW_MARGIN_S = 60


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    user: str
    json: dict[str, Any] | None = None


def make_token(
    user: str, secret: str, now_s: int, lifetime_s: int = TOKEN_LIFETIME_S
) -> str:
    """Sign an HS256 bearer token for ``user`` that expires after ``lifetime_s``."""
    claims = {"sub": user, "iat": now_s, "exp": now_s + lifetime_s}
    return jwt.encode(claims, secret, algorithm="HS256")


class TokenCache:
    """One token per user, renewed shortly before it expires."""

    def __init__(self, secret: str, lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        if not secret:
            raise ValueError(
                "the JWT secret is empty; set SOCIALSTREAM_JWT_SECRET or start "
                "the stack, which writes it to .state/stack.env"
            )
        self._secret = secret
        self._lifetime_s = lifetime_s
        self._tokens: dict[str, tuple[str, int]] = {}

    def token(self, user: str, now_s: int | None = None) -> str:
        now_s = int(time.time()) if now_s is None else now_s
        cached = self._tokens.get(user)
        if cached is not None and cached[1] - now_s > TOKEN_RENEW_MARGIN_S:
            return cached[0]
        token = make_token(user, self._secret, now_s, self._lifetime_s)
        self._tokens[user] = (token, now_s + self._lifetime_s)
        return token

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def message_request(record: Record) -> HttpRequest:
    """Build the POST /messages request of a MessagePosted record."""
    event = record.payload()
    return HttpRequest("POST", "/messages", event["user"], {"body": event["body"]})


def like_request(record: Record, message_id: str) -> HttpRequest:
    """Build the PUT or DELETE request of a like record, for the server's id."""
    event = record.payload()
    method = {"LikeAdded": "PUT", "LikeRemoved": "DELETE"}[event["type"]]
    path = f"/messages/{quote(message_id, safe='')}/likes"
    return HttpRequest(method, path, event["user"])


def session_shift_us(session: Sequence[Record], now_us: int) -> int:
    """Return how far to move a view session back so it is not in the future.

    A session planned to be reported after ``now_us`` is moved back by the
    difference, so its report time becomes now and every view keeps its
    place relative to the others. Earlier sessions keep their planned times.
    """
    planned_report = max(record.send_at for record in session)
    return max(0, planned_report - now_us)


def views_request(
    session: Sequence[Record], message_ids: Mapping[str, str], shift_us: int
) -> HttpRequest:
    """Build the POST /views request of one session's view records.

    ``message_ids`` maps simulated message ids to the server's ids. Views of
    a message missing from it are left out, because the message was never
    created on the server.
    """
    views = []
    user = ""
    for record in session:
        event = record.payload()
        user = event["user"]
        server_id = message_ids.get(event["message_id"])
        if server_id is None:
            continue
        started_at = parse_time(event["started_at"]) - shift_us
        views.append(
            {
                "message_id": server_id,
                "started_at": format_time(started_at),
                "duration_ms": event["duration_ms"],
            }
        )
    return HttpRequest("POST", "/views", user, {"views": views})
