"""Moving a running announcer to a new broker URL (new credentials): nothing pending is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avocado.discovery import Announcer, BrokerError, DiscoveryWatcher, Outbox
from tests.discovery.support import (
    BROKER_HOST,
    BROKER_PORT,
    FAST,
    FakeNode,
    RecordingRegistry,
    broker_user,
    new_service_id,
    require_broker,
    run,
)
from tests.discovery.tcp_proxy import TcpProxy


def test_the_new_broker_url_takes_over_with_what_is_pending(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        node = FakeNode("http://1.test")
        async with (
            TcpProxy(BROKER_HOST, BROKER_PORT) as old,
            TcpProxy(BROKER_HOST, BROKER_PORT) as new,
            DiscoveryWatcher(broker, registry),
        ):
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                announcer = Announcer(old.url(), outbox, node, service_id=service_id, interval=60, **FAST)
                await announcer.start()
                await registry.wait_sequence(service_id, 1)
                await old.cut()  # the old credentials stop working, say
                node.move("http://2.test")
                assert await announcer.changed() is not None  # waits on disk

                await announcer.use_broker(new.url(userinfo="guest:guest"))
                async with asyncio.timeout(10):
                    await announcer.flush()
                await registry.wait_sequence(service_id, 2)
                node.move("http://3.test")
                await announcer.changed()
                await registry.wait_sequence(service_id, 3)
                stats = announcer.stats()
                assert stats.connected and stats.broker == f"amqp://guest:***@127.0.0.1:{new.port}/"
                await announcer.close(offline=True)
            assert new.accepted >= 2  # the check of the new URL, then the session on it
        assert registry.sequences(service_id) == [1, 2, 3, 4]  # each once, in order; 4 is offline

    run(scenario)


def test_a_url_the_broker_refuses_changes_nothing(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        node = FakeNode("http://1.test")
        async with DiscoveryWatcher(broker, registry):
            with (
                broker_user() as (name, url),
                Outbox(tmp_path / "outbox.sqlite3") as outbox,
            ):
                wrong = url.replace(f"{name}:", f"{name}:not-", 1)
                announcer = Announcer(url, outbox, node, service_id=service_id, interval=60, **FAST)
                await announcer.start()
                await registry.wait_sequence(service_id, 1)
                with pytest.raises(BrokerError, match="the broker refused the login") as refused:
                    await announcer.use_broker(wrong)
                assert refused.value.refused and "not-" not in str(refused.value)
                assert announcer.stats().broker == f"amqp://{name}:***@127.0.0.1:5672/"
                node.move("http://2.test")
                await announcer.changed()
                await registry.wait_sequence(service_id, 2)  # still announcing where it was
                await announcer.close(offline=False)

    run(scenario, timeout=60)
