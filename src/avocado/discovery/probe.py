"""Probes: a watcher that just connected asks every node to announce itself now.

Announcements are events, so a watcher that starts (or reconnects) between two re-announcements
would otherwise know nothing for up to an interval. Instead it publishes an empty message with
routing key ``inference.discovery.probe`` on the same exchange; each node listens for it and
records a fresh announcement, which goes out through its outbox like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from avocado.discovery.broker import describe_broker_error
from avocado.discovery.messages import EXCHANGE
from avocado.redact import redact_url

__all__ = ["PROBE_ROUTING_KEY", "ProbeListener", "send_probe"]

log = logging.getLogger(__name__)

PROBE_ROUTING_KEY = "inference.discovery.probe"


async def send_probe(exchange: AbstractExchange) -> None:
    """Ask every node listening on ``exchange`` to announce itself."""
    message = aio_pika.Message(b"{}", content_type="application/json", expiration=30)
    await exchange.publish(message, routing_key=PROBE_ROUTING_KEY)


class ProbeListener:
    """Calls ``on_probe`` (on the event loop) for probes, at most once per ``min_interval`` seconds.

    A robust connection: after an outage it declares its queue and binding again. ``start``
    never fails the node: an unreachable broker is retried in the background.
    """

    def __init__(
        self,
        amqp_url: str,
        on_probe: Callable[[], object],
        *,
        exchange: str = EXCHANGE,
        min_interval: float = 1.0,
        reconnect_interval: float = 5.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.on_probe = on_probe
        self.exchange = exchange
        self.min_interval = min_interval
        self.reconnect_interval = reconnect_interval
        self.queue_name = f"avocado-probe-{uuid.uuid4().hex}"
        self.probes = 0  # probes answered
        self._last = -float("inf")
        self._connection: AbstractRobustConnection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """Its queue is bound and consumed, on a connection that is up."""
        task, connection = self._task, self._connection
        return task is not None and task.done() and connection is not None and connection.connected.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="discovery-probe-listener")

    async def use_broker(self, amqp_url: str) -> None:
        """Listen on ``amqp_url`` from now on (new credentials, say)."""
        await self.close()
        self.amqp_url = amqp_url
        await self.start()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _connect(self) -> None:
        while True:
            try:
                self._connection = await aio_pika.connect_robust(
                    self.amqp_url,
                    reconnect_interval=self.reconnect_interval,
                    client_properties={"connection_name": "avocado probe listener"},
                )
                channel = await self._connection.channel()
                exchange = await channel.declare_exchange(self.exchange, ExchangeType.TOPIC, durable=True)
                queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
                await queue.bind(exchange, PROBE_ROUTING_KEY)
                await queue.consume(self._on_message, no_ack=True)
                return
            except Exception as exc:
                log.debug(
                    "probe listener: %s unreachable (%s)",
                    redact_url(self.amqp_url),
                    describe_broker_error(exc, self.amqp_url),
                )
                if self._connection is not None:
                    await self._connection.close()
                    self._connection = None
                await asyncio.sleep(self.reconnect_interval)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        self.probes += 1
        try:
            self.on_probe()
        except Exception:
            log.exception("answering a discovery probe failed")
