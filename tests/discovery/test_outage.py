"""Long outages: a day without a broker loses no state change; the outbox is written off the event loop.

The day is simulated: the announcer waits between connection attempts with a stand-in for
``asyncio.sleep`` that lets each delay pass at once on a clock of its own, while every attempt is a
real connection to a closed port. When the simulated day is over the port opens again in front of
the real RabbitMQ, and what the node recorded meanwhile must arrive, in order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from avocado.discovery import Announcement, Announcer, DiscoveryWatcher, Outbox
from tests.discovery.support import (
    BROKER_PORT,
    FakeNode,
    RecordingRegistry,
    new_service_id,
    require_broker,
    run,
)
from tests.discovery.tcp_proxy import TcpProxy

HOUR = 3600.0
DAY = 24 * HOUR


class SimulatedOutage:
    """The announcer's sleep: delays pass at once on a simulated clock, on which ``on_hour`` runs hourly.

    Once ``length`` seconds have passed, the next delay lasts until the test calls :meth:`end`.
    """

    def __init__(self, length: float, on_hour: Callable[[int], object]) -> None:
        self.length = length
        self.on_hour = on_hour
        self.now = 0.0
        self.hours = 0
        self.delays: list[float] = []
        self.over = asyncio.Event()  # set by the test: the broker is back
        self.lasted = asyncio.Event()  # the simulated outage has lasted ``length``

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        while self.hours < self.length // HOUR and self.now >= (self.hours + 1) * HOUR:
            self.hours += 1
            self.on_hour(self.hours)
        if self.now >= self.length:
            self.lasted.set()
            await self.over.wait()
        await asyncio.sleep(0)  # each attempt still lets the rest of the node run

    def end(self) -> None:
        self.over.set()


def test_a_day_without_the_broker_loses_no_state_change(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        node = FakeNode("http://0.test")
        recorded: list[asyncio.Future[Announcement | None]] = []
        announcer: Announcer

        def move(hour: int) -> None:  # the node's URL changes every simulated hour
            node.move(f"http://{hour}.test")
            recorded.append(announcer.changed())

        outage = SimulatedOutage(DAY, move)
        async with TcpProxy("127.0.0.1", BROKER_PORT) as proxy, DiscoveryWatcher(broker, registry):
            await proxy.cut()  # the port is closed: every attempt is refused
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                # The node's own retry delays (0.5 s doubling up to 10 s); heartbeats every 50 ms of
                # real time pile up meanwhile.
                announcer = Announcer(
                    proxy.url(), outbox, node, service_id=service_id, interval=0.05, sleep=outage.sleep
                )
                await announcer.start()
                async with asyncio.timeout(120):
                    await outage.lasted.wait()
                await asyncio.gather(*recorded)

                # A day of attempts, far past the 1,024th where 2**attempt overflowed, none over the cap.
                assert len(outage.delays) > 5000 and max(outage.delays) <= 10.0
                stats = announcer.stats()
                assert not stats.connected and stats.last_error is not None
                assert stats.last_confirmed_sequence is None and registry.sequences(service_id) == []
                # Heartbeats superseded each other: one row for each state, every change kept.
                pending = await asyncio.to_thread(outbox.pending)
                assert [a.url for a in pending] == [f"http://{hour}.test" for hour in range(25)]
                assert stats.last_sequence > len(pending)

                await proxy.restore()
                outage.end()
                async with asyncio.timeout(20):
                    await announcer.flush()
                assert announcer.stats().pending == 0
                await registry.wait_sequence(service_id, pending[-1].sequence)
                await announcer.close(offline=False)
        # Every state, in order, each once; heartbeats made while the backlog went out may follow.
        accepted = registry.accepted[service_id]
        assert [a.url for a in accepted[:25]] == [f"http://{hour}.test" for hour in range(25)]
        assert {a.url for a in accepted[25:]} <= {"http://24.test"}
        assert [a.sequence for a in accepted[:24]] == [a.sequence for a in pending[:24]]
        assert [a.previous_url for a in accepted[1:25]] == [f"http://{hour}.test" for hour in range(24)]

    run(scenario, timeout=180)


class WatchedOutbox(Outbox):
    """An outbox that notes the thread of every call, and whose writes can be held (a slow disk)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: set[int] = set()
        self.disk = threading.Event()
        self.disk.set()

    def add(self, fields: Mapping[str, object]) -> Announcement:
        self.threads.add(threading.get_ident())
        self.disk.wait(5)
        return super().add(fields)

    def pending(self, limit: int | None = None) -> list[Announcement]:
        self.threads.add(threading.get_ident())
        return super().pending(limit)

    def confirm(self, sequence: int) -> None:
        self.threads.add(threading.get_ident())
        super().confirm(sequence)

    def count(self) -> int:
        self.threads.add(threading.get_ident())
        return super().count()

    def last(self) -> Announcement | None:
        self.threads.add(threading.get_ident())
        return super().last()


def test_the_outbox_is_written_off_the_event_loop_in_the_order_of_the_changes(tmp_path: Path) -> None:
    broker = require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        loop_thread = threading.get_ident()
        registry = RecordingRegistry()
        node = FakeNode("http://0.test")
        outbox = WatchedOutbox(tmp_path / "outbox.sqlite3")
        async with (
            DiscoveryWatcher(broker, registry),
            Announcer(broker, outbox, node, service_id=service_id, interval=60) as announcer,
        ):
            await registry.wait_sequence(service_id, 1)
            outbox.disk.clear()  # every write now takes until the test lets it through
            futures = []
            for n in range(1, 21):
                node.move(f"http://{n}.test")
                futures.append(announcer.changed())  # returns at once: the loop never waits for the disk
            await asyncio.sleep(0)
            assert not any(future.done() for future in futures)
            assert announcer.stats().last_sequence == 1  # stats do not wait for the disk either
            outbox.disk.set()
            recorded = await asyncio.gather(*futures)
            assert [a.sequence for a in recorded if a is not None] == list(range(2, 22))
            assert [a.url for a in recorded if a is not None] == [f"http://{n}.test" for n in range(1, 21)]
            async with asyncio.timeout(10):
                await announcer.flush()
            await registry.wait_sequence(service_id, 21)
        outbox.close()
        assert outbox.threads and loop_thread not in outbox.threads
        assert registry.sequences(service_id) == list(range(1, 23))  # 22: offline, at close

    run(scenario)
