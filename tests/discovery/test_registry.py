"""The registry keeps the newest announcement per node, and forgets nodes that left or went quiet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from avocado.discovery import Announcement, Registry

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def announcement(sequence: int, service_id: str = "a", **changes: Any) -> Announcement:
    data: dict[str, Any] = {
        "service_id": service_id,
        "url": f"http://{service_id}.test/{sequence}",
        "status": "online",
        "version": "0.1.0",
        "started_at": T0,
        "timestamp": T0,
        "sequence": sequence,
        "ttl_seconds": 10,
    }
    data.update(changes)
    return Announcement.model_validate(data)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_newer_wins_older_and_duplicates_are_ignored() -> None:
    registry = Registry()
    assert registry.apply(announcement(2))
    assert not registry.apply(announcement(2))  # duplicate
    assert not registry.apply(announcement(1))  # late
    assert registry.get("a") == announcement(2)
    assert registry.apply(announcement(5))
    assert registry.get("a") == announcement(5)
    assert registry.get("nobody") is None


def test_offline_removes_and_a_late_online_does_not_bring_it_back() -> None:
    registry = Registry()
    registry.apply(announcement(1))
    registry.apply(announcement(1, "b"))
    assert registry.apply(announcement(3, status="offline"))
    assert registry.get("a") is None
    assert not registry.apply(announcement(2))
    assert [a.service_id for a in registry.snapshot()] == ["b"]
    assert registry.apply(announcement(4))  # back for real: a newer sequence
    assert registry.get("a") == announcement(4)


def test_draining_nodes_stay_listed() -> None:
    registry = Registry()
    registry.apply(announcement(1, status="draining"))
    assert [a.status for a in registry.snapshot()] == ["draining"]


def test_ttl_counts_from_receipt_on_the_local_clock() -> None:
    clock = Clock()
    registry = Registry(clock=clock)
    registry.apply(announcement(1, "a", ttl_seconds=10))
    clock.now += 5
    registry.apply(announcement(1, "b", ttl_seconds=10))  # its timestamp is old, but it just arrived
    clock.now += 5
    assert registry.get("a") is None  # expired (not listed even before a sweep)
    assert [a.service_id for a in registry.snapshot()] == ["b"]
    assert registry.expire() == ["a"]
    assert registry.expire() == []
    clock.now += 4.9
    assert registry.get("b") is not None
    registry.apply(announcement(2, "b", ttl_seconds=10))  # a re-announcement renews it
    clock.now += 9
    assert registry.get("b") is not None
    clock.now += 1
    assert registry.expire() == ["b"] and registry.snapshot() == []


def test_snapshot_is_sorted_by_service_id() -> None:
    registry = Registry()
    for service_id in ("c", "a", "b"):
        registry.apply(announcement(1, service_id))
    assert [a.service_id for a in registry.snapshot()] == ["a", "b", "c"]


def test_on_change_runs_after_each_change_and_its_errors_are_contained() -> None:
    seen: list[list[str]] = []

    def on_change(registry: Registry) -> None:
        seen.append([a.url for a in registry.snapshot()])
        raise RuntimeError("callback bug")

    clock = Clock()
    registry = Registry(on_change=on_change, clock=clock)
    registry.apply(announcement(1))
    registry.apply(announcement(1))  # ignored: no call
    registry.apply(announcement(2))
    clock.now += 60
    registry.expire()
    assert seen == [["http://a.test/1"], ["http://a.test/2"], []]


def test_wait_for() -> None:
    async def scenario() -> None:
        registry = Registry()
        waiter = asyncio.create_task(registry.wait_for(lambda r: r.get("a") is not None, timeout=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        registry.apply(announcement(1))
        await asyncio.wait_for(waiter, 1)
        await registry.wait_for(lambda r: len(r.snapshot()) == 1, timeout=0)  # already true
        with pytest.raises(TimeoutError):
            await registry.wait_for(lambda r: r.get("b") is not None, timeout=0.2)

    asyncio.run(scenario())


def test_wait_for_notices_expiry_without_a_sweep() -> None:
    async def scenario() -> None:
        registry = Registry()
        registry.apply(announcement(1, ttl_seconds=1))
        await registry.wait_for(lambda r: r.get("a") is None, timeout=3)

    asyncio.run(scenario())
