"""The consumer side on a real RabbitMQ: bad messages, lost connections, silent nodes."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import ExchangeType

from avocado.discovery import EXCHANGE, ROUTING_KEY, Announcer, DiscoveryWatcher, Outbox, dump_announcement
from tests.discovery.support import (
    BROKER_PORT,
    FAST,
    FakeNode,
    RecordingRegistry,
    eventually,
    new_service_id,
    require_broker,
    run,
)
from tests.discovery.tcp_proxy import TcpProxy


def test_invalid_messages_are_dropped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        async with DiscoveryWatcher(broker, registry) as watcher:
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                recorder = Announcer(broker, outbox, FakeNode(), service_id=service_id)
                valid = await recorder.changed()
                await recorder.close(offline=False)
            assert valid is not None
            wrong_schema = json.loads(dump_announcement(valid)) | {"schema": 2}
            async with await aio_pika.connect(broker) as connection:
                channel = await connection.channel()
                exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.TOPIC, durable=True)
                for body in (b"{nope", json.dumps(wrong_schema).encode(), b"[]", dump_announcement(valid)):
                    await exchange.publish(aio_pika.Message(body), routing_key=ROUTING_KEY)
            await registry.wait_sequence(service_id, 1)
            assert watcher.invalid >= 3 and watcher.connected

    with caplog.at_level(logging.WARNING, logger="avocado.discovery"):
        run(scenario)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not JSON" in w for w in warnings)
    assert any("unsupported schema 2" in w for w in warnings)


def test_the_watcher_survives_a_dropped_connection(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            async with (
                TcpProxy("127.0.0.1", BROKER_PORT) as proxy,
                DiscoveryWatcher(proxy.url(), registry, reconnect_interval=0.2) as watcher,
                Announcer(
                    broker, outbox, FakeNode(), service_id=service_id, interval=60, **FAST
                ) as announcer,
            ):
                await registry.wait_sequence(service_id, 1)
                await proxy.cut()
                await eventually(lambda: not watcher.connected, what="the watcher noticing")
                await asyncio.sleep(0.5)  # a few refused reconnection attempts
                await proxy.restore()
                # Announcements sent before the queue is declared again are missed (and re-sent
                # every interval in real life): announce until one comes through the new queue.
                async with asyncio.timeout(10):
                    while registry.sequences(service_id)[-1] == 1:
                        announcer.changed()
                        await asyncio.sleep(0.2)
                assert watcher.connected and proxy.accepted >= 2

    run(scenario)


def test_a_silent_node_leaves_after_its_ttl(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            async with (
                DiscoveryWatcher(broker, registry, sweep_interval=0.1),
                Announcer(
                    broker, outbox, FakeNode(), service_id=service_id, interval=60, ttl_seconds=1, **FAST
                ),
            ):
                await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=5)
                loop = asyncio.get_running_loop()
                seen = loop.time()
                await registry.wait_for(lambda r: r.get(service_id) is None, timeout=5)
                assert 0.5 < loop.time() - seen < 2.5

    run(scenario)
