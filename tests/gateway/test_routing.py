"""Routing: the model decides which nodes may take a request, load and weight which one does."""

from __future__ import annotations

from collections import Counter

from avocado.gateway.nodes import Node, NodePool, NodeSpec
from avocado.gateway.routing import Router

MODEL = "smollm2:135m"


def pool_of(*specs: tuple[str, float], models: tuple[str, ...] = (MODEL,)) -> NodePool:
    pool = NodePool([NodeSpec(f"http://{name}.test", name=name, weight=weight) for name, weight in specs])
    for node in pool.nodes:
        node.set_tags([{"name": m} for m in models])
    return pool


def node(pool: NodePool, name: str) -> Node:
    found = pool.get(name)
    assert found is not None
    return found


def state(node: Node) -> str:
    return node.breaker.state


def test_only_nodes_with_the_model_are_chosen() -> None:
    pool = pool_of(("a", 1), ("b", 1))
    node(pool, "b").set_tags([{"name": "gemma3:270m"}])
    router = Router(pool)
    assert {router.choose(MODEL).name for _ in range(4)} == {"a"}
    assert router.choose("gemma3:270m") is node(pool, "b")
    assert router.choose("other:1b") is None
    assert router.refusal("other:1b", "other:1b") == (404, "model 'other:1b' not found")


def test_fewest_outstanding_requests_per_weight_wins() -> None:
    pool = pool_of(("a", 1), ("b", 2))
    a, b = node(pool, "a"), node(pool, "b")
    router = Router(pool)
    a.in_flight, b.in_flight = 2, 3  # a: 2 per weight, b: 1.5
    assert router.choose(MODEL) is b
    a.in_flight = 1  # a: 1
    assert router.choose(MODEL) is a
    assert router.choose(MODEL, exclude=[a]) is b


def test_ties_take_turns() -> None:
    pool = pool_of(("a", 1), ("b", 1), ("c", 1))
    router = Router(pool)
    chosen = Counter(router.choose(MODEL).name for _ in range(30))
    assert chosen == {"a": 10, "b": 10, "c": 10}


def test_unhealthy_draining_gone_and_open_nodes_get_nothing_new() -> None:
    pool = pool_of(("a", 1), ("b", 1), ("c", 1), ("d", 1))
    a, b, c, d = (node(pool, name) for name in "abcd")
    a.healthy = False
    b.status = "draining"
    c.gone = True
    for _ in range(3):
        d.failed("boom")
    router = Router(pool)
    assert d.breaker.state == "open"
    assert router.choose(MODEL) is None
    assert router.refusal(MODEL, "SmolLM2:135m") == (
        503,
        "no node that serves model 'SmolLM2:135m' can take requests right now",
    )
    assert router.refusal("other:1b", "other:1b") == (404, "model 'other:1b' not found")
    d.healthy = False
    assert router.refusal(MODEL, MODEL) == (503, "no node takes new requests: every healthy node is draining")
    b.healthy = False
    assert router.refusal(MODEL, "SmolLM2:135m") == (503, "no healthy node is available")


def test_a_half_open_node_takes_a_single_probe() -> None:
    clock = [0.0]
    pool = NodePool([NodeSpec("http://a.test", name="a")], breaker_cooldown=5, clock=lambda: clock[0])
    a = pool.nodes[0]
    a.set_tags([{"name": MODEL}])
    for _ in range(3):
        a.failed("boom")
    router = Router(pool)
    assert router.choose(MODEL) is None
    clock[0] = 5.0
    assert router.choose(MODEL) is a and a.breaker.state == "half_open"
    assert router.choose(MODEL) is None  # the probe is out
    a.succeeded(0.01)
    assert router.choose(MODEL) is a and state(a) == "closed"
