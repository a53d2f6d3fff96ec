"""Listen to announcements on RabbitMQ and keep a :class:`~avocado.discovery.registry.Registry`.

The watcher has its own exclusive, auto-delete queue bound to the announcements' routing key, on a
robust connection: after a dropped connection or a broker restart aio-pika reconnects and declares
the exchange, the queue, its binding and the consumer again. Announcements sent while it was away are
missed, so on every (re)connection it sends a probe (:mod:`avocado.discovery.probe`) and every node
announces itself at once; nodes also re-announce within their interval, well inside their TTL.

aio-pika's robust queues need a name chosen on the client to declare the same queue again, so the
queue is ``avocado-discovery-<random hex>`` rather than a server-generated ``amq.gen-...`` name; it is
just as private (exclusive to this connection) and goes away with it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from avocado.discovery.broker import broker_error, warn_if_unverified
from avocado.discovery.messages import EXCHANGE, ROUTING_KEY, InvalidAnnouncement, parse_announcement
from avocado.discovery.probe import send_probe
from avocado.discovery.registry import Registry
from avocado.redact import redact_url

__all__ = ["DiscoveryWatcher"]

log = logging.getLogger(__name__)


class DiscoveryWatcher:
    """Feeds ``registry`` from ``amqp_url`` between :meth:`start` and :meth:`close` (or ``async with``).

    ``start`` raises :class:`~avocado.discovery.broker.BrokerError` if the broker cannot be reached
    at first (a refused TLS certificate included); later outages are retried every
    ``reconnect_interval`` seconds. Expired nodes are swept every ``sweep_interval`` seconds.
    """

    def __init__(
        self,
        amqp_url: str,
        registry: Registry | None = None,
        *,
        exchange: str = EXCHANGE,
        routing_key: str = ROUTING_KEY,
        reconnect_interval: float = 5.0,
        connect_timeout: float = 10.0,
        sweep_interval: float = 1.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.registry = registry if registry is not None else Registry()
        self.exchange = exchange
        self.routing_key = routing_key
        self.reconnect_interval = reconnect_interval
        self.connect_timeout = connect_timeout
        self.sweep_interval = sweep_interval
        self.queue_name = f"avocado-discovery-{uuid.uuid4().hex}"
        self.invalid = 0  # messages dropped because they were not valid announcements
        self._connection: AbstractRobustConnection | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected.is_set()

    async def start(self) -> None:
        """Connect, bind and probe; :class:`BrokerError` (a ``ConnectionError``) says why it could not."""
        log.info("watching discovery announcements on %s", redact_url(self.amqp_url))
        warn_if_unverified(self.amqp_url)
        try:
            connection = await aio_pika.connect_robust(
                self.amqp_url,
                timeout=self.connect_timeout,
                reconnect_interval=self.reconnect_interval,
                client_properties={"connection_name": "avocado discovery watcher"},
            )
        except Exception as exc:
            raise broker_error(exc, self.amqp_url) from None
        self._connection = connection
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=100)
            exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
            await queue.bind(exchange, self.routing_key)
            await queue.consume(self._on_message)
            await send_probe(exchange)  # every node announces itself now, not at its next interval
            connection.reconnect_callbacks.add(self._probe_again)
        except BaseException:
            await self.close()
            raise
        self._sweeper = asyncio.create_task(self._sweep(), name="discovery-sweeper")

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> DiscoveryWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _probe_again(self, connection: AbstractRobustConnection | None, /) -> None:
        """Back after an outage: announcements were missed, so ask for them again."""
        if connection is None:
            return
        try:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
            await send_probe(exchange)
            await channel.close()
        except Exception as exc:
            log.debug("could not probe after reconnecting: %s", exc)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            announcement = parse_announcement(message.body)
        except InvalidAnnouncement as exc:
            self.invalid += 1
            log.warning("dropped a discovery message that is not a valid announcement: %s", exc)
        else:
            try:
                self.registry.apply(announcement)
            except Exception:
                log.exception("discovery registry failed on announcement %d", announcement.sequence)
        try:
            await message.ack()
        except Exception as exc:  # the channel went away: the queue went with it, nothing to redeliver
            log.debug("could not ack a discovery message: %s", exc)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.registry.expire()
