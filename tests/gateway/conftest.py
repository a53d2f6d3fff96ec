"""Real nodes for the gateway tests: two with different models, each on its own (hard-linked) home.

``node_a`` serves ``smollm2:135m`` only; ``node_b`` serves ``gemma3:270m`` and ``smollm2-b:135m`` (a copy
of SmolLM2 under another name, so that inference on it stays fast). A model is deleted or copied
through the node's own API, as an operator would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from avocado.gateway.nodes import NodePool
from tests.gateway.support import RunningGateway, start_gateway, wait_until
from tests.support import GEMMA, SMOLLM, RunningNode, linked_home, start_node

SMOLLM_B = "smollm2-b:135m"


def node_with(
    home: Path, target: Path, *, keep: set[str], copies: dict[str, str] | None = None
) -> RunningNode:
    """A node on a home linked from ``home`` that serves ``keep`` plus ``copies`` (source -> new name)."""
    running = start_node(linked_home(home, target))
    with running.client() as http:
        for source, destination in (copies or {}).items():
            http.post("/api/copy", json={"source": source, "destination": destination}).raise_for_status()
        for entry in http.get("/api/tags").json()["models"]:
            if entry["name"] not in keep and entry["name"] not in (copies or {}).values():
                http.request("DELETE", "/api/delete", json={"model": entry["name"]}).raise_for_status()
    return running


@pytest.fixture(scope="session")
def node_a(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = node_with(home, tmp_path_factory.mktemp("node-a"), keep={SMOLLM})
    yield running
    running.stop()


@pytest.fixture(scope="session")
def node_b(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = node_with(home, tmp_path_factory.mktemp("node-b"), keep={GEMMA}, copies={SMOLLM: SMOLLM_B})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(node_a: RunningNode, node_b: RunningNode) -> Iterator[RunningGateway]:
    """A gateway over ``node_a`` and ``node_b`` as static nodes."""
    running = start_gateway(NodePool([node_a.url, node_b.url]))
    # A node's first /api/tags reads its models' headers; on a busy machine that can outlast the first
    # health check (2 s), and the node then counts as down until a later one: wait for the event.
    wait_until(lambda: all(node.healthy for node in running.pool.nodes), 60, "both nodes healthy")
    yield running
    running.stop()
