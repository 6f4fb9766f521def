"""Send simulated traffic through the HTTP API, and record what it applied.

Requests keep the planned order where the order matters: a message's likes
and unlikes go out one after the other, after the message is created, and a
view session waits until its messages exist. Independent requests run
concurrently, up to a bound.

Only valid records are sent, because the API rejects invalid requests
before they reach a topic and never re-sends an event. The server stamps
messages and likes with its own clock, so the result holds the events as
the server wrote them, for the truth to be computed from.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from simulator.http_requests import (
    HttpRequest,
    TokenCache,
    like_request,
    message_request,
    session_shift_us,
    views_request,
)
from simulator.records import (
    Record,
    day_of,
    event_record,
    like_changed,
    message_posted,
    parse_time,
    view_recorded,
)
from simulator.sending import Pacer, SendReport, progress_bar

logger = logging.getLogger(__name__)

# Failed requests logged in full; later failures are only counted.
MAX_LOGGED_FAILURES = 20
REQUEST_TIMEOUT_S = 30.0

StepKind = Literal["message", "like", "views"]


@dataclass(slots=True)
class Step:
    """One planned request: a message, a like or unlike, or a view session."""

    kind: StepKind
    send_at: int
    records: list[Record]

    @property
    def message_key(self) -> str:
        """Return the simulated message id of a message or like step."""
        return self.records[0].key.decode("utf-8")


@dataclass(slots=True)
class HttpRun:
    """The result of sending through the API.

    ``records`` are the events the server accepted, as it wrote them, in an
    order that keeps each message's events in the order applied.
    ``message_ids`` maps each simulated message id to the server's id.
    """

    report: SendReport
    records: list[Record]
    message_ids: dict[str, str] = field(default_factory=dict)


def plan_steps(records: Sequence[Record]) -> list[Step]:
    """Group valid records into requests; a view session becomes one request."""
    steps: list[Step] = []
    sessions: dict[int, Step] = {}
    for record in records:
        if record.kind != "valid":
            continue
        if record.topic == "messages":
            steps.append(Step("message", record.send_at, [record]))
        elif record.topic == "likes":
            steps.append(Step("like", record.send_at, [record]))
        elif record.session is None:
            steps.append(Step("views", record.send_at, [record]))
        elif record.session in sessions:
            sessions[record.session].records.append(record)
        else:
            step = Step("views", record.send_at, [record])
            sessions[record.session] = step
            steps.append(step)
    return steps


async def send_http(
    records: Sequence[Record],
    api_url: str,
    jwt_secret: str,
    *,
    duration_s: float = 0.0,
    speed: float | None = None,
    concurrency: int = 16,
    progress: bool = False,
) -> HttpRun:
    """Send the valid records through the API at ``api_url``."""
    steps = plan_steps(records)
    tokens = TokenCache(jwt_secret)
    report = SendReport(via="http")
    pacer = Pacer(
        steps[0].send_at if steps else 0,
        steps[-1].send_at if steps else 0,
        duration_s=duration_s,
        speed=speed,
    )
    logger.info("sending %d requests to %s", len(steps), api_url)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        base_url=api_url, timeout=timeout, connector=connector
    ) as session:
        started = time.monotonic()
        with progress_bar(len(steps), progress, unit="request") as bar:
            sender = _Sender(session, tokens, report, concurrency, bar)
            applied = await sender.run(steps, pacer)
        report.elapsed_s = time.monotonic() - started

    failed = sum(report.failed.values())
    logger.info(
        "sent %d requests in %.2f s; %d events failed",
        len(steps),
        report.elapsed_s,
        failed,
    )
    flat = [record for step_records in applied for record in step_records]
    return HttpRun(report, flat, sender.server_ids)


class _Sender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenCache,
        report: SendReport,
        concurrency: int,
        bar: Any,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.report = report
        self.bar = bar
        self.requests = asyncio.Semaphore(concurrency)
        # Limits the tasks created ahead of the requests in flight. A task
        # waits only for tasks created before it, which never wait for a
        # backlog slot, so the limit cannot deadlock.
        self.backlog = asyncio.Semaphore(concurrency * 8)
        # Resolves to the server's id of a simulated message, or None when
        # creating it failed.
        self.created: dict[str, asyncio.Future[str | None]] = {}
        self.server_ids: dict[str, str] = {}
        self.failures = 0

    async def run(self, steps: list[Step], pacer: Pacer) -> list[list[Record]]:
        """Send every step and return the events applied, by step index."""
        applied: list[list[Record]] = [[] for _ in steps]
        chains: dict[str, asyncio.Task[None]] = {}
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        pacer.start()
        for index, step in enumerate(steps):
            await pacer.wait_for(step.send_at)
            await self.backlog.acquire()
            previous = None
            if step.kind == "message":
                self.created[step.message_key] = loop.create_future()
            elif step.kind == "like":
                previous = chains.get(step.message_key)
            task = asyncio.create_task(self._run_step(step, previous, applied, index))
            if step.kind != "views":
                chains[step.message_key] = task
            tasks.append(task)
        await asyncio.gather(*tasks)
        return applied

    async def _run_step(
        self,
        step: Step,
        previous: asyncio.Task[None] | None,
        applied: list[list[Record]],
        index: int,
    ) -> None:
        try:
            if previous is not None:
                # Wait for the previous step of the message to finish, but
                # do not inherit its error.
                await asyncio.wait([previous])
            if step.kind == "message":
                applied[index] = await self._post_message(step)
            elif step.kind == "like":
                applied[index] = await self._change_like(step)
            else:
                applied[index] = await self._post_views(step)
        finally:
            created = self.created.get(step.message_key)
            if step.kind == "message" and created is not None and not created.done():
                created.set_result(None)
            self.backlog.release()
            self.bar.update(1)

    async def _post_message(self, step: Step) -> list[Record]:
        request = message_request(step.records[0])
        body = await self._send(request, "messages", 1, expected=(201,))
        if body is None:
            return []
        try:
            server_id = str(body["message_id"])
            created_at = parse_time(str(body["created_at"]))
        except (KeyError, ValueError) as error:
            reason = f"response lacks a valid message_id and created_at: {error}"
            self._failed(request, "messages", 1, reason)
            return []
        self.server_ids[step.message_key] = server_id
        self.created[step.message_key].set_result(server_id)
        assert request.json is not None
        event = message_posted(
            str(uuid.uuid4()),
            server_id,
            request.user,
            request.json["body"],
            created_at,
        )
        return [event_record(event, created_at)]

    async def _change_like(self, step: Step) -> list[Record]:
        server_id = await self._server_id(step.message_key)
        if server_id is None:
            return []
        record = step.records[0]
        request = like_request(record, server_id)
        sent_at = _now_us()
        body = await self._send(request, "likes", 1)
        if body is None:
            return []
        occurred_at = _like_time(body, sent_at)
        event = like_changed(
            record.payload()["type"],
            str(uuid.uuid4()),
            server_id,
            request.user,
            occurred_at,
        )
        return [event_record(event, occurred_at)]

    async def _post_views(self, step: Step) -> list[Record]:
        for record in step.records:
            await self._server_id(record.key.decode("utf-8"))
        sent_at = _now_us()
        shift_us = session_shift_us(step.records, sent_at)
        request = views_request(step.records, self.server_ids, shift_us)
        assert request.json is not None
        views = request.json["views"]
        if not views:
            return []
        body = await self._send(request, "views", len(views), expected=(202,))
        if body is None:
            return []

        # The server stamps occurred_at on arrival, so the client clock
        # before sending is at most that time and the view timing rule
        # holds for both.
        events = []
        for view in views:
            event = view_recorded(
                str(uuid.uuid4()),
                view["message_id"],
                request.user,
                parse_time(view["started_at"]),
                view["duration_ms"],
                sent_at,
            )
            events.append(event_record(event, sent_at))
        return events

    async def _server_id(self, message_key: str) -> str | None:
        created = self.created.get(message_key)
        if created is None:
            return None
        return await asyncio.shield(created)

    async def _send(
        self,
        request: HttpRequest,
        topic: str,
        events: int,
        expected: tuple[int, ...] | None = None,
    ) -> dict[str, Any] | None:
        """Send ``request`` carrying ``events`` events.

        Return its JSON object body ({} when it has none), or None when the
        request failed or the status is not in ``expected`` (default: 2xx).
        """
        headers = self.tokens.headers(request.user)
        async with self.requests:
            try:
                async with self.session.request(
                    request.method, request.path, json=request.json, headers=headers
                ) as response:
                    if not _status_ok(response.status, expected):
                        text = await response.text()
                        reason = f"HTTP {response.status}: {text[:200]}"
                        self._failed(request, topic, events, reason)
                        return None
                    self.report.sent[topic] += events
                    if response.content_type != "application/json":
                        return {}
                    body = await response.json()
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                reason = f"{type(error).__name__}: {error}"
                self._failed(request, topic, events, reason)
                return None
        return body if isinstance(body, dict) else {}

    def _failed(
        self, request: HttpRequest, topic: str, events: int, reason: str
    ) -> None:
        # NOTE: a request that timed out may still have been applied by the
        # server. The truth leaves it out, so verify would report it.
        self.report.failed[topic] += events
        self.failures += 1
        if self.failures <= MAX_LOGGED_FAILURES:
            logger.warning(
                "%s %s as %s failed: %s",
                request.method,
                request.path,
                request.user,
                reason,
            )
        elif self.failures == MAX_LOGGED_FAILURES + 1:
            logger.warning("further failed requests are counted but not logged")


def _status_ok(status: int, expected: tuple[int, ...] | None) -> bool:
    if expected is not None:
        return status in expected
    return 200 <= status < 300


def _now_us() -> int:
    return time.time_ns() // 1000


def _like_time(body: dict[str, Any], sent_at: int) -> int:
    """Return the time a like counts at: the server's if it returned one.

    Without an ``occurred_at`` in the response, the client clock at sending
    is used instead. The two can fall on different days only around
    midnight UTC, and the warning below reports that case.
    """
    stamp = body.get("occurred_at")
    if isinstance(stamp, str):
        try:
            return parse_time(stamp)
        except ValueError:
            logger.warning("like response has an invalid occurred_at %r", stamp)
    received_at = _now_us()
    if day_of(received_at) != day_of(sent_at):
        logger.warning(
            "a like request crossed midnight UTC; its day in the truth may be wrong"
        )
    return sent_at
