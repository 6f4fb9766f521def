"""Registration of the API's web views on the Faust app."""

from __future__ import annotations

from app.pipeline import Pipeline


def register_api(pipeline: Pipeline) -> None:
    """Add the transactional API's routes to the worker's web server."""
