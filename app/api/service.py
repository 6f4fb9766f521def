"""Handlers of the operational routes ``/health``, ``/metrics``, ``/openapi.json``."""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache

import orjson
from aiohttp import web

from app.api.context import API_CONTEXT, HEALTH_TIMEOUT_S
from app.api.openapi import build_openapi
from app.api.responses import json_response
from app.metrics import counters

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def get_health(request: web.Request) -> web.Response:
    """Respond 200 when Kafka and MongoDB both respond, else 503 naming which failed."""
    context = request.app[API_CONTEXT]
    kafka, mongodb = await asyncio.gather(
        context.kafka_ping(), _ping_mongodb(request)
    )
    healthy = kafka and mongodb
    body = {"status": "ok" if healthy else "unavailable", "kafka": kafka,
            "mongodb": mongodb}
    return json_response(body, status=200 if healthy else 503)


async def _ping_mongodb(request: web.Request) -> bool:
    store = request.app[API_CONTEXT].store
    try:
        return await asyncio.wait_for(store.ping(), HEALTH_TIMEOUT_S)
    except TimeoutError:
        logger.warning("MongoDB health check timed out after %.0f s", HEALTH_TIMEOUT_S)
        return False


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=counters.render(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
    )


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=_openapi_json(), content_type="application/json")


@lru_cache(maxsize=1)
def _openapi_json() -> bytes:
    return orjson.dumps(build_openapi())
