"""The node pool: static entries, discovery in step with a registry, health checks, breakers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from avocado.discovery import Registry
from avocado.gateway.nodes import Breaker, Node, NodePool, NodeSpec, normalize_model
from tests.gateway.support import announcement
from tests.support import GEMMA, SMOLLM, RunningNode, free_port, linked_home, start_node

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: Breaker) -> str:
    """Read anew each time (mypy would otherwise narrow the attribute across calls)."""
    return breaker.state


def status(node: Node) -> str:
    return node.status


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def test_static_entries_parse_and_keep_their_key_to_themselves() -> None:
    spec = NodeSpec.parse(" https://node.example:8443/ ,sekret-key ")
    assert (spec.url, spec.api_key, spec.weight) == ("https://node.example:8443", "sekret-key", 1.0)
    assert "sekret" not in repr(spec)
    assert NodeSpec.parse("http://127.0.0.1:11434").api_key is None
    for bad in ("127.0.0.1:11434", "ftp://node", "http://", ""):
        with pytest.raises(ValueError, match="URL"):
            NodeSpec.parse(bad)
    with pytest.raises(ValueError, match="weight"):
        NodeSpec.parse("http://node", weight=0)
    for bad_key in ("two words", "line\r\nbreak"):
        with pytest.raises(ValueError, match="api key"):
            NodeSpec.parse(f"http://node,{bad_key}")

    pool = NodePool(["http://a.test,key-a", NodeSpec("http://b.test", weight=3, name="b")])
    a, b = pool.get("http://a.test"), pool.get("b")
    assert a is not None and b is not None
    assert a.source == "static" and a.has_api_key and not b.has_api_key and b.weight == 3
    assert a.auth == ((b"authorization", b"Bearer key-a"),)
    assert "key-a" not in repr(a) and "key-a" not in str(a.describe())
    assert [n.name for n in pool.nodes] == ["b", "http://a.test"]
    with pytest.raises(ValueError, match="twice"):
        NodePool(["http://a.test", "http://a.test/"])


def test_model_names_are_normalized_as_nodes_list_them() -> None:
    assert normalize_model("smollm2:135m") == "smollm2:135m"
    assert normalize_model("SmolLM2:135M") == "smollm2:135m"
    assert normalize_model("mymodel") == "mymodel:latest"
    assert normalize_model("registry.ollama.ai/library/gemma3:270m") == "gemma3:270m"
    assert normalize_model("me/mine") == "me/mine:latest"
    with pytest.raises(ValueError, match="invalid model name"):
        normalize_model("bad name")


def test_breaker_opens_after_failures_in_a_row_and_probes_once_after_the_cooldown() -> None:
    clock = Clock()
    breaker = Breaker(threshold=3, cooldown=10, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success in between: the count starts again
    breaker.failure()
    breaker.failure()
    assert state(breaker) == "closed" and breaker.acquire()
    breaker.failure()
    assert state(breaker) == "open" and not breaker.available() and not breaker.acquire()

    clock.now += 10
    assert breaker.available()
    assert breaker.acquire() and state(breaker) == "half_open"
    assert not breaker.available() and not breaker.acquire()  # one probe at a time
    breaker.failure()  # the probe failed: open for another cooldown
    assert state(breaker) == "open" and not breaker.acquire()

    clock.now += 10
    assert breaker.acquire()
    breaker.release()  # the probe's client left: no verdict, the next request may probe
    assert state(breaker) == "open" and breaker.acquire()
    breaker.success()
    assert state(breaker) == "closed" and breaker.failures == 0


def test_discovery_announcements_add_drain_and_remove_nodes() -> None:
    registry = Registry()
    pool = NodePool(registry=registry)
    registry.apply(announcement("n1", "http://n1.test:11434/", 1, models=[SMOLLM]))
    registry.apply(announcement("n2", "http://n2.test:11434", 1, models=["custom"]))
    n1, n2 = pool.get("n1"), pool.get("n2")
    assert n1 is not None and n2 is not None
    assert (n1.source, n1.url, n1.status, n1.routable) == (
        "discovery",
        "http://n1.test:11434",
        "online",
        True,
    )
    assert n1.models == {SMOLLM} and n2.models == {"custom:latest"}

    registry.apply(announcement("n1", "http://n1.test:11434", 2, status="draining", models=[SMOLLM]))
    assert n1.status == "draining" and not n1.routable

    registry.apply(announcement("n2", "http://moved.test:11434", 2, models=["custom"]))
    assert n2.url == "http://moved.test:11434"

    pool.begin(n1)  # a request still runs on n1 when it goes offline
    registry.apply(announcement("n1", "http://n1.test:11434", 3, status="offline"))
    assert pool.get("n1") is n1 and n1.gone and not n1.routable
    assert n1.describe()["status"] == "offline"
    pool.end(n1)
    assert pool.get("n1") is None
    assert [n.name for n in pool.nodes] == ["n2"]


def test_a_node_whose_ttl_ran_out_is_dropped() -> None:
    clock = Clock()
    registry = Registry(clock=clock)
    pool = NodePool(registry=registry)
    registry.apply(announcement("n1", "http://n1.test", 1, ttl_seconds=30))
    assert pool.get("n1") is not None
    clock.now += 31
    pool.sync()  # the health loop does this every round, watcher or not
    assert pool.get("n1") is None


def test_an_announced_static_node_takes_its_status_from_discovery() -> None:
    registry = Registry()
    pool = NodePool(["http://n1.test:11434"], registry=registry)
    registry.apply(announcement("n1", "http://n1.test:11434", 1, status="draining"))
    (node,) = pool.nodes
    assert node.source == "static" and status(node) == "draining"
    registry.apply(announcement("n1", "http://n1.test:11434", 2, status="offline"))
    assert status(node) == "online" and pool.nodes == (node,)  # static: it stays, health checks decide


def test_health_checks_poll_models_and_mark_dead_nodes(node_a: RunningNode) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    async def scenario() -> tuple[Node, Node]:
        pool = NodePool([node_a.url, dead], breaker_failures=2, health_interval=60)
        await pool.start()
        try:
            await pool.check_all()  # a second failure in a row opens the dead node's breaker
            live, gone = pool.get(node_a.url), pool.get(dead)
            assert live is not None and gone is not None
            return live, gone
        finally:
            await pool.close()

    live, gone = run(scenario())
    assert live.healthy and live.models == {SMOLLM} and live.tags[0]["digest"]
    assert live.latency_s is not None and live.latency_s < 2
    assert not gone.healthy and gone.checked and "connect" in (gone.last_error or "").lower()
    assert state(gone.breaker) == "open"


def test_a_node_that_wants_a_key_is_unhealthy_without_it(home: Path, tmp_path: Path) -> None:
    running = start_node(linked_home(home, tmp_path / "home"), api_key="node-key-for-health-checks")

    async def check(entry: str) -> Node:
        pool = NodePool([entry])
        await pool.start()
        await pool.close()
        return pool.nodes[0]

    try:
        keyed = run(check(f"{running.url},node-key-for-health-checks"))
        keyless = run(check(running.url))
    finally:
        running.stop()
    assert keyed.healthy and {SMOLLM, GEMMA} <= keyed.models
    assert (
        not keyless.healthy
        and "401" in (keyless.last_error or "")
        and "api key" in (keyless.last_error or "")
    )


async def _closes_kept_alive_connections(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the first request on a connection, keeps it open, and drops it at the second request:
    what a node does when it times out an idle connection just as the gateway reuses it."""
    body = b'{"models": [{"name": "m:1", "model": "m:1"}]}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    await reader.readuntil(b"\r\n\r\n")
    writer.write(head + body)
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


def test_a_kept_alive_connection_closed_under_a_health_check_is_not_a_failure() -> None:
    async def scenario() -> list[bool]:
        server = await asyncio.start_server(_closes_kept_alive_connections, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = NodePool([f"http://127.0.0.1:{port}"])
        node = pool.nodes[0]
        try:
            results = [await pool.check(node) for _ in range(3)]
            return [*results, node.healthy, node.breaker.failures == 0]
        finally:
            await pool.close()
            server.close()

    assert run(scenario()) == [True] * 5
