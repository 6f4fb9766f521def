"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.auth import mint_token
from app.settings import Settings

# 64 bytes, so PyJWT does not warn about short HMAC keys.
TEST_JWT_SECRET = "socialstream-test-secret-" + "0" * 39


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Return settings with a JWT secret and a state folder of this test alone."""
    return Settings(state_dir=tmp_path, jwt_secret=TEST_JWT_SECRET)


@pytest.fixture
def bearer(api_settings: Settings) -> Callable[[str], dict[str, str]]:
    """Return a function that builds the Authorization header for a user."""

    def headers(user: str, ttl_s: int = 300) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(api_settings, user, ttl_s)}"}

    return headers
