"""Dependencies of the API's handlers: settings, the feed store, Kafka, the clock.

:func:`app.api.routes.register_api` builds one :class:`ApiContext` from the
pipeline and stores it in the aiohttp application under :data:`API_CONTEXT`,
so handlers are plain functions of the request and unit tests can pass fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from pymongo.errors import PyMongoError

from app.api.errors import ApiError
from app.events import Event
from app.settings import Settings
from app.store import Page

logger = logging.getLogger(__name__)

# Seconds a write waits for the broker's acknowledgement before it fails with 503.
PUBLISH_TIMEOUT_S = 15.0
# Seconds each dependency of GET /health may take to respond.
HEALTH_TIMEOUT_S = 5.0


class FeedReader(Protocol):
    """The reads of :class:`app.store.FeedStore` that the API uses."""

    async def ping(self) -> bool: ...

    async def get_message(self, message_id: str) -> dict[str, Any] | None: ...

    async def feed(self, limit: int, cursor: str | None = None) -> Page: ...

    async def user_messages(
        self, user: str, limit: int, cursor: str | None = None
    ) -> Page: ...


class KafkaProbe:
    """Health check of the Kafka cluster, through an admin client.

    The client connects on the first check and reconnects after a failure.
    A failure is logged when the state changes, not on every check.
    """

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._admin: AIOKafkaAdminClient | None = None
        self._healthy = True

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self._describe_cluster(), HEALTH_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as error:
            if self._healthy:
                logger.warning("Kafka health check failed: %r", error)
            self._healthy = False
            await self.close()
            return False
        if not self._healthy:
            logger.info("Kafka health check succeeded after failing")
        self._healthy = True
        return True

    async def _describe_cluster(self) -> None:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap_servers,
                request_timeout_ms=int(HEALTH_TIMEOUT_S * 1000),
            )
            self._admin = admin
            await admin.start()
        await self._admin.describe_cluster()

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()


@dataclass
class ApiContext:
    settings: Settings
    store: FeedReader
    # Writes one event and waits for the broker's acknowledgement.
    publish_one: Callable[[Event], Awaitable[Any]]
    kafka_ping: Callable[[], Awaitable[bool]]
    close: Callable[[], Awaitable[None]] | None = None
    # Seconds since the epoch; tests replace it to move the clock.
    clock: Callable[[], float] = time.time

    async def publish(self, events: Sequence[Event]) -> None:
        """Write ``events`` and wait until the broker acknowledged every one.

        Raises ApiError 503 when Kafka fails or does not respond within
        ``PUBLISH_TIMEOUT_S``. Some events of a batch may be written already
        in that case, and a timed-out event may still be written later.
        """
        sends = [self.publish_one(event) for event in events]
        try:
            await asyncio.wait_for(asyncio.gather(*sends), PUBLISH_TIMEOUT_S)
        except TimeoutError:
            _log_publish_failure(events, "timed out")
            raise ApiError(
                503, None,
                f"Kafka did not acknowledge the write within {PUBLISH_TIMEOUT_S:.0f} s;"
                " it may still be applied, so check before you retry",
            ) from None
        # Faust wraps a KafkaError of the send itself in ProducerSendError.
        except (KafkaError, ProducerSendError) as error:
            _log_publish_failure(events, repr(error))
            raise ApiError(
                503, None, f"writing to Kafka failed ({error}); retry later"
            ) from None

    async def read(
        self, action: Callable[[], Awaitable[Any]], description: str
    ) -> Any:
        """Run a MongoDB read and turn a driver failure into ApiError 503."""
        try:
            return await action()
        except PyMongoError as error:
            logger.warning("MongoDB read failed for %s: %r", description, error)
            raise ApiError(
                503, None, "MongoDB is not available; retry later"
            ) from None


def _log_publish_failure(events: Sequence[Event], reason: str) -> None:
    first = events[0]
    logger.warning(
        "publishing %d %s events failed (%s); first event %s of message %s",
        len(events), first.type, reason, first.event_id, first.message_id,
    )


API_CONTEXT = web.AppKey("api_context", ApiContext)
