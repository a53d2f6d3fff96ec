"""``--discover-key``: the key a gateway sends to the nodes it discovers, from the settings to the node.

A real node with an API key announces itself on the real broker; one gateway has its key and uses it,
another has a wrong one and shows the node as unauthorized instead of failing requests on it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.discovery.support import require_broker
from tests.gateway.support import Built, start_built, wait_until
from tests.support import SMOLLM, RunningNode, linked_home, start_node

NODE_KEY = "node-key-" + secrets.token_hex(8)
MODEL = f"discovered-{secrets.token_hex(4)}:1"  # on this node only, whatever else the broker announces


@pytest.fixture(scope="module")
def keyed_node(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = start_node(
        linked_home(home, tmp_path_factory.mktemp("keyed")),
        api_key=NODE_KEY,
        amqp_url=require_broker(),
        announce_interval=1,
    )
    with running.client(headers={"Authorization": f"Bearer {NODE_KEY}"}) as http:
        http.post("/api/copy", json={"source": SMOLLM, "destination": MODEL}).raise_for_status()
    yield running
    running.stop()


def listed(gateway: Built, url: str) -> dict[str, Any] | None:
    nodes = httpx.get(f"{gateway.url}/api/avocado/nodes", timeout=10).json()["nodes"]
    return next((node for node in nodes if node["url"] == url), None)


def test_discovered_nodes_get_the_discover_key(keyed_node: RunningNode, tmp_path: Path) -> None:
    gateway = start_built(home=tmp_path, amqp_url=require_broker(), discover_key=NODE_KEY, health_interval=1)
    try:
        wait_until(
            lambda: (node := listed(gateway, keyed_node.url)) is not None and node["health"] == "healthy",
            timeout=30,
            message="the keyed node is discovered and healthy",
        )
        answer = ollama.Client(host=gateway.url).generate(MODEL, "Hi", options={"num_predict": 2})
        assert answer.done
    finally:
        gateway.stop()


def test_a_node_that_refuses_the_key_shows_as_unauthorized(keyed_node: RunningNode, tmp_path: Path) -> None:
    gateway = start_built(
        home=tmp_path, amqp_url=require_broker(), discover_key="not-the-node-key", health_interval=1
    )
    try:
        wait_until(
            lambda: (
                (node := listed(gateway, keyed_node.url)) is not None and node["health"] == "unauthorized"
            ),
            timeout=30,
            message="the keyed node is discovered and shown unauthorized",
        )
        node = listed(gateway, keyed_node.url)
        assert node is not None and not node["healthy"] and node["breaker"] == "closed"
        assert "refuses the api key" in node["last_error"] and NODE_KEY not in json.dumps(node)
        response = httpx.post(
            f"{gateway.url}/api/generate", json={"model": MODEL, "prompt": "Hi"}, timeout=30
        )
        assert response.status_code == 503  # no request reaches it: no node can take the model now

        env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
        shown = subprocess.run(
            [sys.executable, "-m", "avocado", "gateway", "nodes", "--gateway", gateway.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        row = next(line for line in shown.stdout.splitlines() if keyed_node.url in line)
        assert "unauthorized" in row.split()
    finally:
        gateway.stop()


def test_the_discover_key_is_a_setting_and_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from avocado.config import load_gateway_settings

    monkeypatch.setenv("AVOCADO_DISCOVER_KEY", "from-the-env-123")
    settings = load_gateway_settings()
    assert (
        settings.discover_key is not None and settings.discover_key.get_secret_value() == "from-the-env-123"
    )
    assert "from-the-env-123" not in repr(settings)
    flagged = load_gateway_settings(discover_key="from-the-flag-456")
    assert flagged.discover_key is not None and flagged.discover_key.get_secret_value() == "from-the-flag-456"
    with pytest.raises(ValueError, match="printable, without spaces"):
        load_gateway_settings(discover_key="two words")
    help_text = subprocess.run(
        [sys.executable, "-m", "avocado", "gateway", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--discover-key" in help_text
