"""Deletion of a deployment's topics and MongoDB database.

A deployment is what one topic prefix and one application id name on the
shared services. The main job and the tests create deployments of their own
and delete them with these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.settings import Settings


def owns_topic(settings: Settings, name: str) -> bool:
    """Return whether topic ``name`` belongs to the deployment of ``settings``.

    Event and rollup topics start with the prefix, and Faust's changelog and
    internal topics with the application id.
    """
    return name.startswith((settings.topic_prefix, f"{settings.app_id}-"))


async def delete_topics(
    settings: Settings, owns: Callable[[str], bool] | None = None
) -> list[str]:
    """Delete every topic of the deployment and return their names.

    ``owns`` replaces :func:`owns_topic` as the test of which topics to delete.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    belongs = owns or (lambda name: owns_topic(settings, name))

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if belongs(name)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def drop_database(settings: Settings, timeout_ms: int = 10_000) -> None:
    """Drop the deployment's MongoDB database."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=timeout_ms
    )
    try:
        client.drop_database(settings.mongo_db)
    finally:
        client.close()
