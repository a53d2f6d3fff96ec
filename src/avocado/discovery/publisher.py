"""The node's side: announce where it is, every ``interval`` seconds and whenever its state changes.

An announcement is first committed to the :class:`~avocado.discovery.outbox.Outbox`, then a
background task sends what the outbox holds, in sequence order, and removes each one once the broker
confirms it (publisher confirms). While the broker cannot be reached the node goes on serving: new
announcements pile up on disk (a newer one of the same state supersedes a pending one, so a long
outage leaves every state change and the newest heartbeat) and the task reconnects with capped
exponential backoff and jitter, for as long as the outage lasts. The outbox is SQLite with fsynced
commits: every call to it runs on one thread of the announcer's own, in the order made, never on
the event loop.

Delivered means routed: the broker confirmed the message and put it in at least one queue. Messages
are published ``mandatory``, so when no queue is bound (no gateway listens yet) the broker returns
them; such an announcement stays in the outbox, and the sender sends nothing more until the node
records its next announcement (a change, its next heartbeat, or the answer to a watcher's probe:
whoever binds a queue asks for one), then tries again from the oldest. So a node nobody listens to
publishes no more often than it announces, and what it said in the meantime reaches the first
listener, in order. A publish that gets no confirmation in time, a nack or a lost connection leaves
the row to be sent again after reconnecting; a consumer may thus see an announcement twice and must
ignore sequences it already has (as the ``Registry`` does).

This side uses a plain ``aio_pika.connect`` and its own reconnect loop rather than ``connect_robust``:
it must know which publishes were confirmed, and a robust connection does not replay failed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractExchange, DeliveryMode, ExchangeType
from aiormq.abc import DeliveredMessage

from avocado import __version__
from avocado.backoff import Backoff, Sleep
from avocado.discovery.broker import broker_error, describe_broker_error, warn_if_unverified
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
from avocado.discovery.outbox import Outbox, OutboxThread
from avocado.redact import redact_url

__all__ = ["AnnounceState", "Announcer", "AnnouncerStats", "StateProvider"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    pending: int  # announcements on disk not delivered yet
    last_sequence: int  # the last announcement recorded
    last_confirmed_sequence: int | None  # the last one delivered since this process started
    unroutable: int  # announcements the broker returned because no queue was bound (kept, sent again)
    nobody_listening: bool  # the last one tried came back unroutable: it waits for the next announcement


class _NewBroker(Exception):
    """The broker URL was replaced: leave this session and connect to the new one at once."""


class Announcer:
    """Announces ``state_provider()`` for ``service_id`` on ``amqp_url`` (``amqp://`` or ``amqps://``).

    ``start`` returns at once, whether or not the broker answers. ``changed`` records an announcement
    without waiting (the disk write happens on the announcer's thread; the returned future says what
    was recorded). ``close(offline=True)`` announces ``offline`` and waits up to ``close_timeout``
    seconds for the broker to take it; what is still undelivered stays in the outbox and is sent by
    the next ``start`` on the same outbox. ``use_broker`` moves to another broker URL (new
    credentials) while running, outbox and all.

    ``previous_url`` is the URL this node announced before the current one (also across restarts,
    as the outbox remembers the last announcement), or ``None`` if it never had another.
    ``ttl_seconds`` defaults to three intervals. ``sleep`` is what the retry loop waits with (tests
    pass one that lets hours go by at once). Use it from the event loop's thread only (from another
    thread: ``loop.call_soon_threadsafe(announcer.changed)``).
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
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
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
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.close_timeout = close_timeout
        self.backoff = Backoff(retry_initial, retry_max, jitter=0.5, rng=rng)
        self._sleep = sleep
        self._disk = OutboxThread(outbox)
        self._connected = False
        self._last_error: str | None = None
        self._last_confirmed: int | None = None
        self._unroutable = 0
        self._parked_through: int | None = None  # set while nobody listens: the last sequence tried
        self._last_write: asyncio.Future[Announcement | None] | None = None
        self._closed = False
        self._wake = asyncio.Event()  # new rows to send
        self._timer_reset = asyncio.Event()  # an announcement was just made: the interval starts over
        self._progress = asyncio.Event()  # replaced after each delivery or return, for flush()
        self._retry_now = asyncio.Event()  # set by close(): skip the rest of the current wait
        self._new_broker = asyncio.Event()  # set by use_broker(): reconnect now
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
        warn_if_unverified(self.amqp_url)
        await self._disk.submit(Outbox.count)  # reads the counts stats() shows
        self._record_logged()
        self._sender = asyncio.create_task(self._send_loop(), name="discovery-sender")
        self._ticker = asyncio.create_task(self._tick_loop(), name="discovery-ticker")

    def changed(self) -> asyncio.Future[Announcement | None]:
        """The state changed: record an announcement of it (sent as soon as the broker allows).

        Returns at once; the future holds what was recorded once it is on disk, or ``None`` when the
        provider has nothing to announce, the announcer is closed or the write failed (logged).
        Exceptions from the state provider reach the caller.
        """
        if self._closed:
            return _done(None)
        return self._record(None)

    async def flush(self) -> None:
        """Wait until everything recorded so far is delivered, or returned because nobody listens.

        Bound it with ``asyncio.timeout``.
        """
        if self._last_write is not None:
            await asyncio.wait([self._last_write])
        target = self._disk.last_sequence
        while True:
            progress = self._progress
            if self._disk.pending == 0 or (self._parked_through or 0) >= target:
                return
            await progress.wait()

    async def use_broker(self, amqp_url: str) -> None:
        """Announce on ``amqp_url`` from now on (new credentials, say), with what is pending.

        The new URL is tried first: when it cannot be connected to, :class:`BrokerError` says why
        and the announcer keeps the broker it has.
        """
        if self._closed:
            raise RuntimeError("the announcer is closed")
        warn_if_unverified(amqp_url)
        try:
            connection, _ = await self._open(amqp_url)
        except Exception as exc:
            raise broker_error(exc, amqp_url) from None
        with contextlib.suppress(Exception):
            await connection.close()
        log.info("announcing on %s from now on (was %s)", redact_url(amqp_url), redact_url(self.amqp_url))
        self.amqp_url = amqp_url
        self._new_broker.set()

    async def close(self, offline: bool = True) -> None:
        """Stop announcing; with ``offline``, announce ``offline`` and wait (bounded) for the broker."""
        if self._closed:
            return
        self._closed = True
        await _cancel(self._ticker)
        if offline and self._sender is not None:
            self._retry_now.set()
            try:
                async with asyncio.timeout(self.close_timeout):
                    if await self._record_logged("offline") is not None:
                        await self.flush()
            except TimeoutError:
                log.warning(
                    "the broker did not confirm %s going offline within %gs; the next start sends it",
                    self.service_id,
                    self.close_timeout,
                )
            else:
                if self._disk.pending:
                    log.info(
                        "nobody listens on %s: %d announcement(s) kept", self.exchange, self._disk.pending
                    )
        await _cancel(self._sender)
        if self._last_write is not None:
            await asyncio.wait([self._last_write])
        await self._disk.shutdown()

    def stats(self) -> AnnouncerStats:
        return AnnouncerStats(
            service_id=self.service_id,
            broker=redact_url(self.amqp_url),
            connected=self._connected,
            last_error=self._last_error,
            pending=self._disk.pending,
            last_sequence=self._disk.last_sequence,
            last_confirmed_sequence=self._last_confirmed,
            unroutable=self._unroutable,
            nobody_listening=self._parked_through is not None,
        )

    async def __aenter__(self) -> Announcer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(offline=True)

    # Recording: the state is read here, on the loop; the outbox is written on the disk thread.

    def _record(self, status: Status | None) -> asyncio.Future[Announcement | None]:
        state = self.state_provider()
        if state is None and status != "offline":
            return _done(None)
        timestamp = utc_now()
        # Submitted now, so rows get their sequences in the order announcements were made.
        written = self._disk.submit(functools.partial(self._add, state, status, timestamp))
        self._timer_reset.set()
        future = asyncio.ensure_future(self._recorded(written))
        self._last_write = future
        return future

    def _record_logged(self, status: Status | None = None) -> asyncio.Future[Announcement | None]:
        try:
            return self._record(status)
        except Exception:
            log.exception("could not record a discovery announcement")
            return _done(None)

    def _add(
        self, state: AnnounceState | None, status: Status | None, timestamp: datetime, outbox: Outbox
    ) -> Announcement | None:
        """On the disk thread: record the announcement (``previous_url`` comes from the last one)."""
        last = outbox.last()
        if state is None:  # going offline before the provider had anything: repeat the last one
            if last is None:
                return None
            state = AnnounceState(url=last.url, models=last.models, capabilities=last.capabilities)
        previous_url = None  # the URL announced before this one, if this node ever had another
        if last is not None:
            previous_url = last.url if last.url != state.url else last.previous_url
        announcement = outbox.add(
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
                "timestamp": timestamp,
                "ttl_seconds": self.ttl_seconds,
            }
        )
        log.debug("recorded announcement %d (%s %s)", announcement.sequence, announcement.status, state.url)
        return announcement

    async def _recorded(self, written: Awaitable[Announcement | None]) -> Announcement | None:
        try:
            announcement = await written
        except Exception:
            log.exception("could not record a discovery announcement")
            return None
        if announcement is not None:
            self._wake.set()
        return announcement

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
            except _NewBroker:
                self.backoff.reset()
                continue
            except Exception as exc:
                self._failed(exc)
            # close() and use_broker() cut this wait short, to try at once (once: a broker still down
            # is retried at the usual pace, not in a tight loop while close() waits for it).
            await _first(self._sleep(self.backoff.next()), self._retry_now.wait(), self._new_broker.wait())
            self._retry_now.clear()

    async def _session(self) -> None:
        """Connect, then send whatever the outbox holds until something fails (it always ends raising)."""
        self._new_broker.clear()
        url = self.amqp_url
        connection, exchange = await self._open(url)
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda _sender, _exc: lost.set())
        try:
            self._connected = True
            self._last_error = None
            log.info("connected to discovery broker %s", redact_url(url))
            while True:
                self._wake.clear()
                await self._drain(exchange)
                self.backoff.reset()  # every publish tried got its answer: this broker works
                await _first(self._wake.wait(), lost.wait(), self._new_broker.wait())
                if self._new_broker.is_set():
                    raise _NewBroker
                if lost.is_set():
                    raise ConnectionError("the broker closed the connection")
        finally:
            self._connected = False
            self._parked_through = None  # who listens is known again once connected
            with contextlib.suppress(Exception):
                await connection.close()

    async def _open(self, url: str) -> tuple[AbstractConnection, AbstractExchange]:
        connection = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection = await aio_pika.connect(
                    url, client_properties={"connection_name": f"avocado announcer {self.service_id}"}
                )
                channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
                exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
        except BaseException:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            raise
        return connection, exchange

    async def _drain(self, exchange: AbstractExchange) -> None:
        """Send what is pending, oldest first; stop at one the broker returns (nobody listens)."""
        while True:
            batch, recorded = await self._disk.submit(_batch)
            if not batch:
                return
            for announcement in batch:
                if self._new_broker.is_set():
                    raise _NewBroker
                if not await self._publish(exchange, announcement):
                    self._parked_through = recorded
                    self._signal_progress()
                    return
                self._parked_through = None
                await self._disk.submit(functools.partial(Outbox.confirm, sequence=announcement.sequence))
                self._last_confirmed = announcement.sequence
                self._signal_progress()

    async def _publish(self, exchange: AbstractExchange, announcement: Announcement) -> bool:
        """Publish and wait for the broker's answer: True once routed, False when returned unroutable."""
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
            log.debug("announcement %d was unroutable (no consumer bound): kept", announcement.sequence)
            return False
        if result is None:
            raise RuntimeError("publish was not confirmed (publisher confirms are off)")
        return True

    def _signal_progress(self) -> None:
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    def _failed(self, exc: Exception) -> None:
        error = describe_broker_error(exc, self.amqp_url)
        level = logging.DEBUG if error == self._last_error else logging.WARNING
        log.log(
            level,
            "discovery broker %s: %s; %d announcement(s) wait on disk",
            redact_url(self.amqp_url),
            error,
            self._disk.pending,
        )
        self._last_error = error


def _batch(outbox: Outbox) -> tuple[list[Announcement], int]:
    """On the disk thread: the oldest pending announcements, and the last sequence recorded."""
    return outbox.pending(limit=100), outbox.last_sequence


def _done(value: T) -> asyncio.Future[T]:
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until the first of several awaitables finishes; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
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
