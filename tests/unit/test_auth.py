"""Bearer tokens in app.auth: minting, and every reason a token is rejected."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from app.auth import CLOCK_SKEW_S, InvalidToken, mint_token, verify_token
from app.settings import Settings

# 64 bytes, so PyJWT does not warn about short keys even for HS512.
SECRET = "unit-test-secret-" + "x" * 47


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, jwt_secret=SECRET)


def signed(claims: dict[str, Any], secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(claims, secret, algorithm=kwargs.pop("algorithm", "HS256"),
                      **kwargs)


def now() -> int:
    return int(time.time())


def rejection(settings: Settings, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verify_token(settings, token)
    return str(caught.value)


def test_minted_token_verifies(settings: Settings) -> None:
    token = mint_token(settings, "alice", ttl_s=60)
    assert verify_token(settings, token) == "alice"


def test_minted_token_claims(settings: Settings) -> None:
    before = now()
    token = mint_token(settings, "bob", ttl_s=3600)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert before <= claims["iat"] <= now()
    assert claims["exp"] == claims["iat"] + 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("user", ["", "a b", "x" * 65, "alice\n"])
def test_mint_rejects_invalid_user(settings: Settings, user: str) -> None:
    with pytest.raises(ValueError, match="invalid user"):
        mint_token(settings, user, ttl_s=60)


@pytest.mark.parametrize("ttl", [0, -5])
def test_mint_rejects_nonpositive_ttl(settings: Settings, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_s must be a positive"):
        mint_token(settings, "alice", ttl_s=ttl)


def test_mint_without_secret_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SOCIALSTREAM_JWT_SECRET is not set"):
        mint_token(Settings(state_dir=tmp_path, jwt_secret=""), "alice", ttl_s=60)


def test_verify_without_secret_fails(tmp_path: Path, settings: Settings) -> None:
    token = mint_token(settings, "alice", ttl_s=60)
    with pytest.raises(RuntimeError, match="SOCIALSTREAM_JWT_SECRET is not set"):
        verify_token(Settings(state_dir=tmp_path, jwt_secret=""), token)


def test_expired_token_rejected(settings: Settings) -> None:
    issued = now() - 3600
    token = signed({"sub": "alice", "iat": issued, "exp": now() - CLOCK_SKEW_S - 1})
    assert rejection(settings, token) == "the token has expired; request a new one"


def test_token_within_clock_skew_accepted(settings: Settings) -> None:
    token = signed({"sub": "alice", "iat": now() - 100, "exp": now() - 5})
    assert verify_token(settings, token) == "alice"


def test_forged_token_rejected(settings: Settings) -> None:
    token = signed({"sub": "alice", "iat": now(), "exp": now() + 60},
                   secret="another-secret-of-at-least-32-bytes!!")
    assert rejection(settings, token) == "the token signature is invalid"


def test_tampered_payload_rejected(settings: Settings) -> None:
    token = mint_token(settings, "alice", ttl_s=60)
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")
    assert rejection(settings, f"{header}.{forged}.{signature}") == (
        "the token signature is invalid"
    )


@pytest.mark.parametrize("claim", ["sub", "iat", "exp"])
def test_missing_claim_rejected(settings: Settings, claim: str) -> None:
    claims = {"sub": "alice", "iat": now(), "exp": now() + 60}
    del claims[claim]
    assert rejection(settings, signed(claims)) == f"the token has no {claim!r} claim"


def test_unsigned_token_rejected(settings: Settings) -> None:
    token = jwt.encode({"sub": "alice", "iat": now(), "exp": now() + 60}, None,
                       algorithm="none")
    assert rejection(settings, token) == "the token must be signed with HS256"


def test_other_hmac_algorithm_rejected(settings: Settings) -> None:
    token = signed({"sub": "alice", "iat": now(), "exp": now() + 60},
                   algorithm="HS512")
    assert rejection(settings, token) == "the token must be signed with HS256"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "😀.😀.😀"])
def test_malformed_token_rejected(settings: Settings, token: str) -> None:
    assert rejection(settings, token).startswith("the token is invalid: ")


def test_future_iat_rejected(settings: Settings) -> None:
    issued = now() + CLOCK_SKEW_S + 60
    token = signed({"sub": "alice", "iat": issued, "exp": issued + 60})
    assert rejection(settings, token).startswith("the token is invalid: ")


def test_non_numeric_exp_rejected(settings: Settings) -> None:
    token = signed({"sub": "alice", "iat": now(), "exp": "tomorrow"})
    assert rejection(settings, token).startswith("the token is invalid: ")


@pytest.mark.parametrize("sub", ["", "a b", "x" * 65, "bob\n"])
def test_invalid_subject_rejected(settings: Settings, sub: str) -> None:
    token = signed({"sub": sub, "iat": now(), "exp": now() + 60})
    assert rejection(settings, token) == (
        "the token's 'sub' claim must be 1 to 64 characters of letters, digits "
        "and _ . @ -"
    )


def test_non_string_subject_rejected(settings: Settings) -> None:
    token = signed({"sub": 42, "iat": now(), "exp": now() + 60})
    assert rejection(settings, token).startswith("the token")
