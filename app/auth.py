"""Bearer tokens: HS256 JSON Web Tokens signed with ``SOCIALSTREAM_JWT_SECRET``.

A token carries the user in ``sub`` and must have ``iat`` and ``exp``. The
API takes the user of every write from the token, never from the request
body.
"""

from __future__ import annotations

import time

import jwt

from app.events import InvalidEvent, parse_user
from app.settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp")
# Tolerated clock difference between the token's issuer and this server.
CLOCK_SKEW_S = 30


class InvalidToken(ValueError):
    """A bearer token is malformed, expired, forged or names an invalid user."""


def mint_token(settings: Settings, user: str, ttl_s: int) -> str:
    """Sign a token for ``user`` that expires ``ttl_s`` seconds from now."""
    secret = _secret(settings)
    try:
        parse_user(user, "user")
    except InvalidEvent as error:
        raise ValueError(f"invalid user {user!r}: {error.message}") from None
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s}")
    now = int(time.time())
    claims = {"sub": user, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> str:
    """Return the user of a valid token; raise InvalidToken otherwise."""
    secret = _secret(settings)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
            leeway=CLOCK_SKEW_S,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired; request a new one") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("the token signature is invalid") from None
    except jwt.MissingRequiredClaimError as error:
        raise InvalidToken(f"the token has no {error.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken(f"the token must be signed with {ALGORITHM}") from None
    except jwt.InvalidTokenError as error:
        raise InvalidToken(
            f"the token is invalid: {error}; mint a new one with "
            "'python -m app.cli token USER'"
        ) from None
    try:
        return parse_user(claims["sub"], "sub")
    except InvalidEvent as error:
        raise InvalidToken(f"the token's 'sub' claim {error.message}") from None


def _secret(settings: Settings) -> str:
    if not settings.jwt_secret:
        raise RuntimeError(
            "SOCIALSTREAM_JWT_SECRET is not set; run 'make stack-up' to generate one"
        )
    return settings.jwt_secret
