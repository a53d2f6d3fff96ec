"""Announcing on a real RabbitMQ: delivery, order, outages, restarts, going offline, nobody listening.

Every test uses the real exchange but its own random service ids and only looks at those, so tests
(and any node running on the same broker) do not disturb each other.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, DeliveryMode, ExchangeType

from avocado.discovery import (
    EXCHANGE,
    ROUTING_KEY,
    Announcer,
    DiscoveryWatcher,
    Outbox,
)
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


def test_an_announcement_reaches_a_consumer_with_the_right_properties(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        raw: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, ROUTING_KEY)
            await queue.consume(raw.put, no_ack=True)
            registry = RecordingRegistry()
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                async with (
                    DiscoveryWatcher(broker, registry),
                    Announcer(broker, outbox, FakeNode(), service_id=service_id, **FAST) as announcer,
                ):
                    await registry.wait_sequence(service_id, 1)
                    # The watcher can get it before the broker's confirm reaches the announcer.
                    await eventually(lambda: announcer.stats().pending == 0, what="the confirm")
                    stats = announcer.stats()
                    assert stats.connected and stats.last_confirmed_sequence == 1
                    assert stats.last_error is None and stats.broker == "amqp://guest:***@127.0.0.1:5672/"
            while True:
                message = await asyncio.wait_for(raw.get(), 5)
                if json.loads(message.body)["service_id"] == service_id:
                    break
        assert message.content_type == "application/json"
        assert message.delivery_mode == DeliveryMode.PERSISTENT
        assert message.routing_key == ROUTING_KEY
        assert message.message_id == f"{service_id}:1"
        got = registry.accepted[service_id][0]
        assert (got.url, got.status, got.previous_url, got.ttl_seconds) == (
            "http://node.test:11434",
            "online",
            None,
            90,
        )
        assert [m.name for m in got.models] == ["smollm2:135m"] and got.capabilities == ("chat",)

    run(scenario)


def test_changes_are_announced_at_once_and_state_is_repeated_every_interval(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        node = FakeNode("http://one.test")
        registry = RecordingRegistry()
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            async with (
                DiscoveryWatcher(broker, registry),
                Announcer(broker, outbox, node, service_id=service_id, interval=0.3, **FAST) as announcer,
            ):
                await registry.wait_sequence(service_id, 3)  # two re-announcements on their own
                node.move("http://two.test")
                recorded = announcer.changed()
                assert recorded is not None and recorded.previous_url == "http://one.test"
                await registry.wait_sequence(service_id, recorded.sequence)
        announcements = registry.accepted[service_id]
        assert [a.url for a in announcements[:3]] == ["http://one.test"] * 3
        moved = next(a for a in announcements if a.url == "http://two.test")
        assert moved.previous_url == "http://one.test"
        assert [a.sequence for a in announcements] == sorted({a.sequence for a in announcements})

    run(scenario)


def test_nothing_is_lost_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        node = FakeNode("http://0.test")
        async with TcpProxy("127.0.0.1", BROKER_PORT) as proxy, DiscoveryWatcher(broker, registry):
            outbox = Outbox(tmp_path / "outbox.sqlite3")
            announcer = Announcer(proxy.url(), outbox, node, service_id=service_id, interval=60, **FAST)
            await announcer.start()
            await registry.wait_sequence(service_id, 1)
            # The watcher can get the first announcement before the broker's confirm reaches the announcer.
            await eventually(lambda: announcer.stats().pending == 0, what="the first confirm")

            await proxy.cut()
            await eventually(lambda: not announcer.stats().connected, what="noticing the outage")
            for n in range(1, 6):
                node.move(f"http://{n}.test")
                began = time.monotonic()
                assert announcer.changed() is not None
                assert time.monotonic() - began < 0.2  # the caller never waits for the broker
                await asyncio.sleep(0.1)
            stats = announcer.stats()
            assert stats.pending == 5 and stats.last_sequence == 6 and not stats.connected
            assert stats.last_error is not None and "guest" not in stats.last_error
            assert registry.sequences(service_id) == [1]

            await proxy.restore()
            async with asyncio.timeout(10):
                await announcer.flush()
            await registry.wait_sequence(service_id, 6)
            assert outbox.count() == 0 and announcer.stats().connected
            await announcer.close(offline=False)
            outbox.close()
        assert registry.sequences(service_id) == [1, 2, 3, 4, 5, 6]  # all, in order, each once
        assert [a.url for a in registry.accepted[service_id]][1:] == [f"http://{n}.test" for n in range(1, 6)]

    run(scenario)


def test_what_a_previous_process_left_pending_is_sent_at_the_next_start(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()
    path = tmp_path / "outbox.sqlite3"

    async def scenario() -> None:
        node = FakeNode("http://before.test")
        with Outbox(path) as outbox:  # a node that recorded announcements, then died before sending them
            before = Announcer(broker, outbox, node, service_id=service_id)
            assert [before.changed() is not None for _ in range(3)] == [True] * 3

        registry = RecordingRegistry()
        node.move("http://after.test")
        with Outbox(path) as outbox:
            assert outbox.count() == 3
            async with (
                DiscoveryWatcher(broker, registry),
                Announcer(broker, outbox, node, service_id=service_id, **FAST) as announcer,
            ):
                await registry.wait_sequence(service_id, 4)
                await eventually(lambda: announcer.stats().pending == 0, what="the confirms")
        accepted = registry.accepted[service_id]
        assert [a.sequence for a in accepted[:4]] == [1, 2, 3, 4]
        assert [a.url for a in accepted[:4]] == ["http://before.test"] * 3 + ["http://after.test"]
        assert accepted[3].previous_url == "http://before.test"

    run(scenario)


def test_close_offline_makes_consumers_drop_the_node(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            async with DiscoveryWatcher(broker, registry):
                announcer = Announcer(broker, outbox, FakeNode(), service_id=service_id, **FAST)
                await announcer.start()
                await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=5)
                await announcer.close(offline=True)
                assert outbox.count() == 0  # close waited for the confirmation
                await registry.wait_for(lambda r: r.get(service_id) is None, timeout=5)
                assert announcer.changed() is None  # closed: nothing more is announced
        assert [a.status for a in registry.accepted[service_id]] == ["online", "offline"]

    run(scenario)


def test_close_does_not_hang_when_the_broker_is_gone(tmp_path: Path) -> None:
    require_broker()

    async def scenario() -> None:
        async with TcpProxy("127.0.0.1", BROKER_PORT) as proxy:
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                announcer = Announcer(proxy.url(), outbox, FakeNode(), service_id=new_service_id(), **FAST)
                announcer.close_timeout = 0.5
                await announcer.start()
                async with asyncio.timeout(5):
                    await announcer.flush()
                await proxy.cut()
                began = time.monotonic()
                await announcer.close(offline=True)
                assert time.monotonic() - began < 2
                assert [a.status for a in outbox.pending()] == ["offline"]  # kept for the next start

    run(scenario)


def test_close_does_not_sit_out_a_long_backoff(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        async with TcpProxy("127.0.0.1", BROKER_PORT) as proxy, DiscoveryWatcher(broker, registry):
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                slow = FAST | {"retry_initial": 20.0, "retry_max": 20.0}  # 10 to 20 s between attempts
                announcer = Announcer(proxy.url(), outbox, FakeNode(), service_id=service_id, **slow)
                announcer.close_timeout = 3
                await announcer.start()
                await registry.wait_sequence(service_id, 1)
                await proxy.cut()
                await eventually(lambda: announcer.stats().last_error is not None, what="a failed attempt")
                await proxy.restore()
                began = time.monotonic()
                await announcer.close(offline=True)
                assert time.monotonic() - began < 2.5 and outbox.count() == 0
                await registry.wait_for(lambda r: r.get(service_id) is None, timeout=5)

    run(scenario)


def test_an_unroutable_announcement_counts_as_delivered(tmp_path: Path) -> None:
    broker = require_broker()
    nobody = f"avocado.test.unroutable.{uuid.uuid4().hex}"  # no queue is bound to this key

    async def scenario() -> None:
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            announcer = Announcer(
                broker, outbox, FakeNode(), service_id=new_service_id(), routing_key=nobody, **FAST
            )
            await announcer.start()
            announcer.changed()
            async with asyncio.timeout(5):
                await announcer.flush()
            stats = announcer.stats()
            assert (stats.pending, stats.last_confirmed_sequence, stats.unroutable) == (0, 2, 2)
            assert stats.last_error is None and stats.connected
            await announcer.close(offline=True)
            assert outbox.count() == 0 and announcer.stats().unroutable == 3

    run(scenario)


def test_a_node_without_a_url_yet_announces_nothing(tmp_path: Path) -> None:
    broker = require_broker()

    async def scenario() -> None:
        node = FakeNode()
        node.state = None
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            announcer = Announcer(broker, outbox, node, service_id=new_service_id(), interval=0.1, **FAST)
            await announcer.start()
            await asyncio.sleep(0.3)
            assert outbox.last_sequence == 0 and announcer.changed() is None
            await announcer.close(offline=True)
            assert outbox.last_sequence == 0

    run(scenario)
