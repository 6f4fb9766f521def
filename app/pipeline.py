"""Composition root: the Faust app with its topics, tables, agents and web views.

:func:`create_pipeline` builds everything from one :class:`Settings` object
and imports nothing with side effects, so tests can build several isolated
pipelines (each with its own topic prefix and application id) in one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.structs import RecordMetadata
from faust.exceptions import ConsumerNotStarted

from agents.intake import IntakeApp, IntakeConductor
from app.events import Event
from app.lag import worker_topics
from app.producer_buffer import install_draining_buffer
from app.settings import Settings
from app.store import FeedStore
from tables.definitions import CheckedTable, Tables, create_tables
from tables.recovery import BulkTableManager

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    messages: Any
    likes: Any
    views: Any
    dead_letters: Any
    user_rollup: Any
    day_rollup: Any

    def by_name(self, name: str) -> Any:
        return {"messages": self.messages, "likes": self.likes, "views": self.views}[
            name
        ]


@dataclass
class Pipeline:
    settings: Settings
    app: faust.App
    topics: Topics
    tables: Tables
    store: FeedStore
    extras: dict[str, Any] = field(default_factory=dict)

    async def publish(self, event: Event) -> RecordMetadata:
        """Write ``event`` to its topic and wait until the broker acknowledged it."""
        topic = self.topics.by_name(event.topic)
        pending = await topic.send(key=event.message_id.encode(), value=event.to_json())
        return await pending


# Faust's producer buffer makes a stream wait, and logs a warning, whenever
# more than 100 records (its class default) are pending. One batch of an agent
# writes a changelog record per changed key, so the limit is raised to a few
# batches' worth.
PRODUCER_BUFFER_MAX_MESSAGES = 20_000


def create_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")]
    datadir = settings.state_dir / "faust" / f"{settings.app_id}-{settings.api_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = IntakeApp(
        settings.app_id,
        broker=brokers,
        store="rocksdb://",
        Table=CheckedTable,
        TableManager=BulkTableManager,
        datadir=str(datadir),
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=1,
        web_enabled=True,
        # Faust's /table/ views would serve raw table contents, such as who
        # liked what, without a token; /router/ (ownership) stays on.
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_bind=settings.api_host,
        web_host=settings.api_host,
        web_port=settings.api_port,
        canonical_url=settings.api_url,
        web_in_thread=False,
        table_cleanup_interval=300.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        # On a rebalance, let the batches in progress finish and commit before
        # the partitions move, so the revoked worker writes no table or rollup
        # record after the new owner has started.
        stream_wait_empty=True,
        logging_config=None,
    )
    install_draining_buffer(app.producer, PRODUCER_BUFFER_MAX_MESSAGES)
    return app


def create_topics(app: faust.App, settings: Settings) -> Topics:
    partitions = settings.topic_partitions

    def topic(name: str, internal: bool = False) -> Any:
        return app.topic(
            name,
            partitions=partitions,
            key_serializer="raw",
            value_serializer="raw",
            internal=internal,
        )

    rollup = f"{settings.topic_prefix}{settings.app_id}"
    return Topics(
        messages=topic(settings.topic("messages")),
        likes=topic(settings.topic("likes")),
        views=topic(settings.topic("views")),
        dead_letters=topic(settings.topic("dead-letters")),
        user_rollup=topic(f"{rollup}-user-rollup", internal=True),
        day_rollup=topic(f"{rollup}-day-rollup", internal=True),
    )


def create_pipeline(settings: Settings, *, with_web: bool = True) -> Pipeline:
    """Build the app with every agent, and with the web views when ``with_web``."""
    from agents.guard import CHECK_S as GUARD_CHECK_S
    from agents.guard import StallGuard
    from agents.likes import register_like_agent
    from agents.messages import register_message_agent
    from agents.rollups import register_rollup_agents
    from agents.views import register_view_agent

    app = create_app(settings)
    topics = create_topics(app, settings)
    # Every agent takes its records in batches from an intake (agents.intake).
    conductor = app.topics
    assert isinstance(conductor, IntakeConductor)
    for topic in (
        topics.messages,
        topics.likes,
        topics.views,
        topics.user_rollup,
        topics.day_rollup,
    ):
        conductor.add_intake(topic.get_topic_name())
    tables = create_tables(app, settings)
    store = FeedStore(settings)
    pipeline = Pipeline(settings, app, topics, tables, store)

    register_message_agent(pipeline)
    register_like_agent(pipeline)
    register_view_agent(pipeline)
    register_rollup_agents(pipeline)
    if with_web:
        from app.api.routes import register_api
        from tables.http import register_stats_views

        register_api(pipeline)
        register_stats_views(pipeline)

    guard = StallGuard(app, worker_topics(settings))

    @app.timer(interval=GUARD_CHECK_S)  # type: ignore[untyped-decorator]
    async def guard_partitions() -> None:
        try:
            await guard.check()
        except ConsumerNotStarted:
            pass
        except Exception as error:  # noqa: BLE001 - logged, next check in 5 s
            logger.warning("stall guard check failed: %r", error)

    @app.task  # type: ignore[untyped-decorator]
    async def log_start() -> None:
        logger.info("worker started with settings %s", settings.redacted())
        await store.start()

    return pipeline
