"""Filesystem access to the event archive, on S3 or in a local folder."""

from __future__ import annotations

from typing import Any

from app.settings import Settings


def s3_filesystem(settings: Settings) -> Any:
    """Return an s3fs filesystem for the configured endpoint and credentials."""
    import s3fs

    client_kwargs: dict[str, str] = {"region_name": settings.s3_region}
    if settings.s3_endpoint:
        client_kwargs["endpoint_url"] = settings.s3_endpoint
    return s3fs.S3FileSystem(
        key=settings.s3_access_key or None,
        secret=settings.s3_secret_key or None,
        client_kwargs=client_kwargs,
    )
