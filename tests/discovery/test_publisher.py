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
                    async with asyncio.timeout(5):
                        await announcer.flush()  # the broker confirmed it
                    await registry.wait_sequence(service_id, 1)
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
                recorded = await announcer.changed()
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
            async with asyncio.timeout(5):
                await announcer.flush()
            await registry.wait_sequence(service_id, 1)

            await proxy.cut()
            await eventually(lambda: not announcer.stats().connected, what="noticing the outage")
            for n in range(1, 6):
                node.move(f"http://{n}.test")
                assert await announcer.changed() is not None  # on disk, with no broker to wait for
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
        node = FakeNode()
        with Outbox(path) as outbox:  # a node that recorded announcements, then died before sending them
            before = Announcer(broker, outbox, node, service_id=service_id)
            for n in range(3):
                node.move(f"http://before-{n}.test")
                assert await before.changed() is not None
            await before.close(offline=False)

        registry = RecordingRegistry()
        node.move("http://after.test")
        with Outbox(path) as outbox:
            assert outbox.count() == 3
            async with (
                DiscoveryWatcher(broker, registry),
                Announcer(broker, outbox, node, service_id=service_id, **FAST) as announcer,
            ):
                async with asyncio.timeout(5):
                    await announcer.flush()
                await registry.wait_sequence(service_id, 4)
        accepted = registry.accepted[service_id]
        assert [a.sequence for a in accepted[:4]] == [1, 2, 3, 4]
        before_urls = [f"http://before-{n}.test" for n in range(3)]
        assert [a.url for a in accepted[:4]] == [*before_urls, "http://after.test"]
        assert accepted[3].previous_url == "http://before-2.test"

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
                assert await announcer.changed() is None  # closed: nothing more is announced
        assert [a.status for a in registry.accepted[service_id]] == ["online", "offline"]

    run(scenario)


def test_close_does_not_hang_when_the_broker_is_gone(tmp_path: Path) -> None:
    broker = require_broker()

    async def scenario() -> None:
        retries: list[float] = []

        async def sleep(seconds: float) -> None:  # counts the waits between connection attempts
            retries.append(seconds)
            await asyncio.sleep(seconds)

        async with TcpProxy("127.0.0.1", BROKER_PORT) as proxy, DiscoveryWatcher(broker):
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                announcer = Announcer(
                    proxy.url(), outbox, FakeNode(), service_id=new_service_id(), sleep=sleep, **FAST
                )
                announcer.close_timeout = 0.5
                await announcer.start()
                async with asyncio.timeout(5):
                    await announcer.flush()
                assert outbox.count() == 0  # delivered: the watcher's queue is bound
                await proxy.cut()
                await eventually(lambda: bool(retries), what="a failed attempt")
                began, tried = time.monotonic(), len(retries)
                await announcer.close(offline=True)
                assert time.monotonic() - began < 3  # bounded by close_timeout, not by the outage
                # One attempt at once, then the usual pace (0.05 s and up): not a tight loop.
                assert len(retries) - tried <= 10
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


def test_a_node_without_a_url_yet_announces_nothing(tmp_path: Path) -> None:
    broker = require_broker()

    async def scenario() -> None:
        node = FakeNode()
        node.state = None
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            announcer = Announcer(broker, outbox, node, service_id=new_service_id(), interval=0.05, **FAST)
            await announcer.start()
            await eventually(lambda: node.asked >= 4, what="three intervals")  # at start, then each tick
            assert outbox.last_sequence == 0 and await announcer.changed() is None
            await announcer.close(offline=True)
            assert outbox.last_sequence == 0

    run(scenario)


def test_an_unroutable_announcement_stays_pending_until_someone_listens(tmp_path: Path) -> None:
    """Returned by the broker (no queue bound) is not delivered: it waits, without the node spinning."""
    broker = require_broker()
    service_id = new_service_id()
    nobody_yet = f"avocado.test.unroutable.{uuid.uuid4().hex}"  # no queue is bound to this key, at first

    async def scenario() -> None:
        node = FakeNode("http://one.test")
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            announcer = Announcer(
                broker, outbox, node, service_id=service_id, routing_key=nobody_yet, interval=0.05, **FAST
            )
            await announcer.start()
            async with asyncio.timeout(5):
                await announcer.flush()  # settles once the broker returned it
            stats = announcer.stats()
            assert stats.connected and stats.last_error is None and stats.nobody_listening
            assert stats.pending == 1 and stats.unroutable >= 1 and stats.last_confirmed_sequence is None

            # Heartbeats supersede the waiting one, and each is tried once: no more often than the node
            # announces (a sender that retried at once would have published many times more).
            await eventually(lambda: announcer.stats().last_sequence >= 10, what="ten heartbeats")
            stats = announcer.stats()
            assert stats.pending == 1 and stats.unroutable <= stats.last_sequence
            node.move("http://two.test")
            moved = await announcer.changed()
            assert moved is not None
            async with asyncio.timeout(5):
                await announcer.flush()
            assert [a.url for a in await asyncio.to_thread(outbox.pending)] == [
                "http://one.test",
                "http://two.test",
            ]

            # A consumer binds a queue and asks (as a watcher's probe does): what waited arrives, in order.
            received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            async with await aio_pika.connect(broker) as connection:
                channel = await connection.channel()
                exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.TOPIC, durable=True)
                queue = await channel.declare_queue(exclusive=True, auto_delete=True)
                await queue.bind(exchange, nobody_yet)
                await queue.consume(received.put, no_ack=True)
                asked = await announcer.changed()
                assert asked is not None
                async with asyncio.timeout(5):
                    await announcer.flush()
                    bodies = [json.loads((await received.get()).body) for _ in range(2)]
                stats = announcer.stats()
                assert stats.pending == 0 and not stats.nobody_listening
                assert stats.last_confirmed_sequence == asked.sequence
                await announcer.close(offline=True)
                async with asyncio.timeout(5):
                    offline = json.loads((await received.get()).body)
        assert [(b["url"], b["status"]) for b in bodies] == [
            ("http://one.test", "online"),
            ("http://two.test", "online"),
        ]
        assert bodies[1]["sequence"] == asked.sequence and bodies[0]["sequence"] < moved.sequence
        assert offline["status"] == "offline"

    run(scenario)


def test_close_with_nobody_listening_keeps_offline_for_later_without_waiting(tmp_path: Path) -> None:
    broker = require_broker()
    nobody = f"avocado.test.unroutable.{uuid.uuid4().hex}"

    async def scenario() -> None:
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            announcer = Announcer(
                broker, outbox, FakeNode(), service_id=new_service_id(), routing_key=nobody, **FAST
            )
            announcer.close_timeout = 60  # the broker answers at once: close does not wait for a listener
            await announcer.start()
            async with asyncio.timeout(5):
                await announcer.flush()
                await announcer.close(offline=True)
            assert [a.status for a in await asyncio.to_thread(outbox.pending)] == ["online", "offline"]

    run(scenario)
