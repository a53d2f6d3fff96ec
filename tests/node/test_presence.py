"""A node's presence: GET /api/avocado/status, announcements of its URL and models, drain, offline."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from avocado.discovery import DiscoveryWatcher, Registry
from avocado.node.presence import Presence
from avocado.tunnel import SshTunnel
from tests.discovery.support import require_broker
from tests.support import SMOLLM, RunningNode, linked_home, start_node
from tests.tunnel.support import Sshd

TUNNEL_KEY = "key-for-the-tunnelled-node"
KEYED = {"Authorization": f"Bearer {TUNNEL_KEY}"}


def test_status_of_a_node_without_tunnel_or_broker(http: httpx.Client, node: RunningNode) -> None:
    report = http.get("/api/avocado/status").json()
    assert report["public_url"] == node.url
    assert report["tunnel"]["provider"] == "none"
    assert report["tunnel"]["state"] == "online"
    assert report["announce"] is None
    assert report["status"] == "online"
    assert report["engine"]["kind"] == "embedded"
    assert len(report["service_id"]) == 36


def test_status_shows_each_loaded_models_prompt_cache(home: Path) -> None:
    node = start_node(home, parallel=1, prompt_cache="64MiB")  # one slot: a second prompt displaces the first
    try:
        with node.client() as http:
            for topic in ("owls", "trains"):
                body = {"model": SMOLLM, "prompt": f"Write about {topic}.", "stream": False}
                body["options"] = {"temperature": 0, "num_predict": 24}
                http.post("/api/generate", json=body, timeout=60).raise_for_status()
            cache = http.get("/api/avocado/status").json()["engine"]["prompt_cache"]
        assert list(cache) == [SMOLLM]
        assert (
            cache[SMOLLM]["prompts"] == 1 and 0 < cache[SMOLLM]["size"] < cache[SMOLLM]["limit"] == 64 << 20
        )
    finally:
        node.stop()


def test_node_announces_url_models_changes_drain_and_offline(home: Path, tmp_path: Path) -> None:
    broker = require_broker()
    running = start_node(linked_home(home, tmp_path / "home"), amqp_url=broker, announce_interval=60)
    service_id = running.client().get("/api/avocado/status").json()["service_id"]
    stopped = False

    async def scenario() -> None:
        nonlocal stopped
        registry = Registry()
        async with DiscoveryWatcher(broker, registry):
            # The watcher's probe makes the node announce now, not at its 60 s interval.
            await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=10)
            first = registry.get(service_id)
            assert first is not None
            assert first.url == running.url and first.status == "online"
            assert SMOLLM in {m.name for m in first.models}
            assert {"ollama", "openai"} <= set(first.capabilities)

            with running.client() as http:
                assert http.post("/api/copy", json={"source": SMOLLM, "destination": "copied:1"}).is_success
                await registry.wait_for(
                    lambda r: "copied:1" in {m.name for m in r.get(service_id).models}, timeout=10
                )
                assert http.post("/api/avocado/drain").json() == {"status": "draining"}
                await registry.wait_for(lambda r: r.get(service_id).status == "draining", timeout=10)
                report = http.get("/api/avocado/status").json()
            assert report["announce"]["connected"] is True
            assert "guest:guest" not in str(report)

            await asyncio.to_thread(running.stop)
            stopped = True
            await registry.wait_for(lambda r: r.get(service_id) is None, timeout=10)

    try:
        asyncio.run(scenario())
    finally:
        if not stopped:
            running.stop()


def test_node_behind_an_ssh_tunnel_announces_each_new_url(home: Path, tmp_path: Path, sshd: Sshd) -> None:
    """The public URL is the port sshd allocates; when ssh dies, the new one is announced."""
    broker = require_broker()
    running = start_node(
        linked_home(home, tmp_path / "home"),
        amqp_url=broker,
        announce_interval=60,
        tunnel="ssh",
        tunnel_ssh=sshd.target,
        tunnel_ssh_key=sshd.identity,
        api_key=TUNNEL_KEY,  # a public URL requires one
    )
    presence: Presence = running.app.state.presence
    stopped = False

    async def scenario() -> None:
        nonlocal stopped
        registry = Registry()
        async with DiscoveryWatcher(broker, registry):
            await registry.wait_for(lambda r: r.get(presence.service_id) is not None, timeout=20)
            first = registry.get(presence.service_id)
            assert first is not None and first.url.startswith("http://127.0.0.1:")
            assert first.url != running.url
            async with httpx.AsyncClient(headers=KEYED) as client:  # the node answers through the tunnel
                tags = (await client.get(f"{first.url}/api/tags")).json()
            assert SMOLLM in {m["name"] for m in tags["models"]}

            tunnel = presence.supervisor.tunnel
            assert isinstance(tunnel, SshTunnel) and tunnel.pid is not None
            os.kill(tunnel.pid, signal.SIGKILL)
            await registry.wait_for(lambda r: r.get(presence.service_id).url != first.url, timeout=20)
            second = registry.get(presence.service_id)
            assert (
                second is not None and second.previous_url == first.url and second.sequence > first.sequence
            )

            with running.client(headers=KEYED) as http:
                report = http.get("/api/avocado/status").json()
            assert report["tunnel"]["provider"] == "ssh" and report["tunnel"]["restarts"] == 1
            assert report["public_url"] == second.url
            reopened = presence.supervisor.tunnel
            assert isinstance(reopened, SshTunnel) and reopened.pid is not None
            ssh_pids.append(reopened.pid)

            await asyncio.to_thread(running.stop)
            stopped = True
            await registry.wait_for(lambda r: r.get(presence.service_id) is None, timeout=10)

    ssh_pids: list[int] = []
    try:
        asyncio.run(scenario())
    finally:
        if not stopped:
            running.stop()
    assert not Path(f"/proc/{ssh_pids[0]}").exists(), "the ssh child outlived the node"
