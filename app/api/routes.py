"""Registration of the API's routes on the worker's aiohttp application.

The handlers are plain aiohttp handlers, added to the application that
Faust's web driver serves, so one error middleware covers them, the stats
views and Faust's built-in routes alike.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from app.api import likes, messages, service, views
from app.api.context import API_CONTEXT, ApiContext, KafkaProbe
from app.api.middleware import json_errors

if TYPE_CHECKING:
    from app.pipeline import Pipeline

logger = logging.getLogger(__name__)

# (method, path, handler) of every route of the transactional API.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/health", service.get_health),
    ("GET", "/metrics", service.get_metrics),
    ("GET", "/openapi.json", service.get_openapi),
    ("POST", "/messages", messages.post_message),
    ("GET", "/messages", messages.get_feed),
    ("GET", "/messages/{message_id}", messages.get_message),
    ("PUT", "/messages/{message_id}/likes", likes.put_like),
    ("DELETE", "/messages/{message_id}/likes", likes.delete_like),
    ("GET", "/users/{user}/messages", messages.get_user_messages),
    ("POST", "/views", views.post_views),
)


def register_api(pipeline: Pipeline) -> None:
    """Add the transactional API's routes to the worker's web server."""
    probe = KafkaProbe(pipeline.settings.kafka_bootstrap)
    context = ApiContext(
        settings=pipeline.settings,
        store=pipeline.store,
        publish_one=pipeline.publish,
        kafka_ping=probe.ping,
        close=probe.close,
    )
    web_app = cast(web.Application, pipeline.app.web.web_app)  # type: ignore[attr-defined]
    install_api(web_app, context)


def install_api(web_app: web.Application, context: ApiContext) -> None:
    """Add the context, the error middleware and every route to ``web_app``."""
    web_app[API_CONTEXT] = context
    web_app.middlewares.append(json_errors)
    for method, path, handler in ROUTES:
        web_app.router.add_route(method, path, handler)
    web_app.cleanup_ctx.append(_api_lifetime)


async def _api_lifetime(web_app: web.Application) -> AsyncIterator[None]:
    context = web_app[API_CONTEXT]
    settings = context.settings
    if not settings.jwt_secret:
        logger.error("SOCIALSTREAM_JWT_SECRET is not set, so every write fails")
    logger.info("HTTP API started at %s with %d routes", settings.api_url, len(ROUTES))
    yield
    if context.close is not None:
        await context.close()
    logger.info("HTTP API stopped")
