"""The node's side: announce where it is, every ``interval`` seconds and whenever its state changes.

An announcement is first committed to the :class:`~avocado.discovery.outbox.Outbox`, then a
background task sends what the outbox holds, in sequence order, and removes each one once the broker
confirms it (publisher confirms). While the broker cannot be reached the node goes on serving: new
announcements pile up on disk and the task reconnects with exponential backoff and jitter.

Messages are published ``mandatory``: when no queue is bound the broker returns them, which here only
means nobody listens, so they count as delivered. A publish that gets no confirmation in time, a nack
or a lost connection leaves the row in the outbox to be sent again after reconnecting; a consumer may
thus see an announcement twice and must ignore sequences it already has (as the ``Registry`` does).

This side uses a plain ``aio_pika.connect`` and its own reconnect loop rather than ``connect_robust``:
it must know which publishes were confirmed, and a robust connection does not replay failed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, DeliveryMode, ExchangeType
from aiormq.abc import DeliveredMessage

from avocado import __version__
from avocado.discovery.messages import (
    EXCHANGE,
    ROUTING_KEY,
    SCHEMA,
    Announcement,
    ModelInfo,
    Status,
    dump_announcement,
    utc_now,
)
from avocado.discovery.outbox import Outbox
from avocado.redact import redact_text, redact_url

__all__ = ["AnnounceState", "Announcer", "AnnouncerStats", "StateProvider"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnnounceState:
    """What a node says about itself; the announcer adds identity, times and sequence."""

    url: str
    status: Status = "online"
    models: Sequence[ModelInfo] = ()
    capabilities: Sequence[str] = ()


# Called for every announcement; ``None`` means there is nothing to announce yet (no URL, say).
StateProvider = Callable[[], AnnounceState | None]


@dataclass(frozen=True, slots=True)
class AnnouncerStats:
    """How announcing goes, for a status page; nothing here holds a secret."""

    service_id: str
    broker: str  # the broker URL, password masked
    connected: bool
    last_error: str | None  # the last failure to connect or publish, password masked
    pending: int  # announcements on disk the broker has not confirmed yet
    last_sequence: int  # the last announcement recorded
    last_confirmed_sequence: int | None  # the last one the broker confirmed since this process started
    unroutable: int  # confirmed announcements the broker returned because no queue was bound


class Announcer:
    """Announces ``state_provider()`` for ``service_id`` on ``amqp_url`` (``amqp://`` or ``amqps://``).

    ``start`` returns at once, whether or not the broker answers. ``changed`` records an announcement
    right away (a local disk write, never a wait on the network). ``close(offline=True)`` announces
    ``offline`` and waits up to ``close_timeout`` seconds for the broker to confirm it; what is still
    unconfirmed stays in the outbox and is sent by the next ``start`` on the same outbox.

    ``previous_url`` is the URL this node announced before the current one (also across restarts,
    as the outbox remembers the last announcement), or ``None`` if it never had another.
    ``ttl_seconds`` defaults to three intervals. Use it from the event loop's thread only (from
    another thread: ``loop.call_soon_threadsafe(announcer.changed)``).
    """

    def __init__(
        self,
        amqp_url: str,
        outbox: Outbox,
        state_provider: StateProvider,
        *,
        service_id: str,
        interval: float = 30.0,
        ttl_seconds: int | None = None,
        version: str = __version__,
        started_at: datetime | None = None,
        exchange: str = EXCHANGE,
        routing_key: str = ROUTING_KEY,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
        connect_timeout: float = 10.0,
        publish_timeout: float = 10.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.outbox = outbox
        self.state_provider = state_provider
        self.service_id = service_id
        self.interval = interval
        self.ttl_seconds = ttl_seconds if ttl_seconds is not None else max(1, math.ceil(3 * interval))
        self.version = version
        self.started_at = started_at or utc_now()
        self.exchange = exchange
        self.routing_key = routing_key
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.close_timeout = close_timeout
        self._connected = False
        self._last_error: str | None = None
        self._last_confirmed: int | None = None
        self._unroutable = 0
        self._attempt = 0
        self._closed = False
        self._wake = asyncio.Event()  # new rows to send
        self._timer_reset = asyncio.Event()  # an announcement was just made: the interval starts over
        self._progress = asyncio.Event()  # replaced after each confirmation, for flush()
        self._retry_now = asyncio.Event()  # set by close(): skip the rest of the backoff
        self._sender: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Announce now and keep announcing in the background; never waits for the broker."""
        if self._sender is not None or self._closed:
            raise RuntimeError("an Announcer starts once")
        log.info(
            "announcing %s on %s (exchange %r, every %gs)",
            self.service_id,
            redact_url(self.amqp_url),
            self.exchange,
            self.interval,
        )
        self._record_logged()
        self._sender = asyncio.create_task(self._send_loop(), name="discovery-sender")
        self._ticker = asyncio.create_task(self._tick_loop(), name="discovery-ticker")

    def changed(self) -> Announcement | None:
        """The state changed: record an announcement of it now (sent as soon as the broker allows).

        Returns what was recorded, or ``None`` when the provider has nothing to announce or the
        announcer is closed. Exceptions from the state provider reach the caller.
        """
        if self._closed:
            return None
        return self._record(None)

    async def flush(self) -> None:
        """Wait until the broker confirmed everything recorded so far (bound it with ``asyncio.timeout``)."""
        while self.outbox.count():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 0.5)

    async def close(self, offline: bool = True) -> None:
        """Stop announcing; with ``offline``, announce ``offline`` and wait (bounded) for its confirmation."""
        if self._closed:
            return
        self._closed = True
        await _cancel(self._ticker)
        if offline and self._sender is not None:
            self._retry_now.set()
            try:
                if self._record_logged("offline") is not None:
                    async with asyncio.timeout(self.close_timeout):
                        await self.flush()
            except TimeoutError:
                log.warning(
                    "the broker did not confirm %s going offline within %gs; the next start sends it",
                    self.service_id,
                    self.close_timeout,
                )
        await _cancel(self._sender)

    def stats(self) -> AnnouncerStats:
        return AnnouncerStats(
            service_id=self.service_id,
            broker=redact_url(self.amqp_url),
            connected=self._connected,
            last_error=self._last_error,
            pending=self.outbox.count(),
            last_sequence=self.outbox.last_sequence,
            last_confirmed_sequence=self._last_confirmed,
            unroutable=self._unroutable,
        )

    async def __aenter__(self) -> Announcer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(offline=True)

    # Recording

    def _record(self, status: Status | None) -> Announcement | None:
        state = self.state_provider()
        last = self.outbox.last()
        if state is None and status == "offline" and last is not None:
            state = AnnounceState(url=last.url, models=last.models, capabilities=last.capabilities)
        if state is None:
            return None
        previous_url = None  # the URL announced before this one, if this node ever had another
        if last is not None:
            previous_url = last.url if last.url != state.url else last.previous_url
        announcement = self.outbox.add(
            {
                "schema": SCHEMA,
                "service_id": self.service_id,
                "url": state.url,
                "previous_url": previous_url,
                "status": status or state.status,
                "models": tuple(state.models),
                "capabilities": tuple(state.capabilities),
                "version": self.version,
                "started_at": self.started_at,
                "timestamp": utc_now(),
                "ttl_seconds": self.ttl_seconds,
            }
        )
        log.debug("recorded announcement %d (%s %s)", announcement.sequence, announcement.status, state.url)
        self._wake.set()
        self._timer_reset.set()
        return announcement

    def _record_logged(self, status: Status | None = None) -> Announcement | None:
        try:
            return self._record(status)
        except Exception:
            log.exception("could not record a discovery announcement")
            return None

    async def _tick_loop(self) -> None:
        while True:
            self._timer_reset.clear()
            try:
                await asyncio.wait_for(self._timer_reset.wait(), self.interval)
            except TimeoutError:
                self._record_logged()

    # Sending

    async def _send_loop(self) -> None:
        while True:
            try:
                await self._session()
            except Exception as exc:
                self._failed(exc)
            cap = min(self.retry_max, self.retry_initial * 2**self._attempt)
            self._attempt += 1
            with contextlib.suppress(TimeoutError):  # close() cuts the wait short, to try the offline one
                await asyncio.wait_for(self._retry_now.wait(), random.uniform(cap / 2, cap))

    async def _session(self) -> None:
        """Connect, then send whatever the outbox holds until something fails (it always ends raising)."""
        connection, exchange = await self._open()
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda _sender, _exc: lost.set())
        try:
            self._connected_to()
            while True:
                self._wake.clear()
                await self._drain(exchange)
                await _first(self._wake.wait(), lost.wait())
                if lost.is_set():
                    raise ConnectionError("the broker closed the connection")
        finally:
            self._connected = False
            with contextlib.suppress(Exception):
                await connection.close()

    async def _open(self) -> tuple[AbstractConnection, AbstractExchange]:
        connection = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection = await aio_pika.connect(
                    self.amqp_url,
                    client_properties={"connection_name": f"avocado announcer {self.service_id}"},
                )
                channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
                exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
        except BaseException:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            raise
        return connection, exchange

    def _connected_to(self) -> None:
        self._connected = True
        self._attempt = 0
        self._last_error = None
        log.info("connected to discovery broker %s", redact_url(self.amqp_url))

    async def _drain(self, exchange: AbstractExchange) -> None:
        while batch := self.outbox.pending(limit=100):
            for announcement in batch:
                await self._publish(exchange, announcement)
                self.outbox.confirm(announcement.sequence)
                self._last_confirmed = announcement.sequence
                self._progress.set()
                self._progress = asyncio.Event()

    async def _publish(self, exchange: AbstractExchange, announcement: Announcement) -> None:
        message = aio_pika.Message(
            dump_announcement(announcement),
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=f"{announcement.service_id}:{announcement.sequence}",
            timestamp=announcement.timestamp,
            app_id="avocado",
        )
        result = await exchange.publish(
            message, routing_key=self.routing_key, mandatory=True, timeout=self.publish_timeout
        )
        if isinstance(result, DeliveredMessage):  # returned: no queue bound, nobody listens right now
            self._unroutable += 1
            log.debug("announcement %d was unroutable (no consumer bound)", announcement.sequence)
        elif result is None:
            raise RuntimeError("publish was not confirmed (publisher confirms are off)")

    def _failed(self, exc: Exception) -> None:
        error = redact_text(f"{type(exc).__name__}: {exc}", self.amqp_url)
        level = logging.DEBUG if error == self._last_error else logging.WARNING
        log.log(
            level,
            "discovery broker %s: %s; %d announcement(s) wait on disk",
            redact_url(self.amqp_url),
            error,
            self.outbox.count(),
        )
        self._last_error = error


async def _first(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until the first of several coroutines finishes; cancel the others."""
    tasks = [asyncio.create_task(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait until it has ended (without swallowing a cancellation of our own)."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        log.error("discovery task %s failed", task.get_name(), exc_info=task.exception())
