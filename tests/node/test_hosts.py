"""Host header checks (DNS rebinding): a node on loopback answers only to its own names."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from avocado.config import Settings
from avocado.node.api.hosts import HostPolicy, host_of
from tests.node.proxy.test_proxy import start_proxy
from tests.support import RunningNode, linked_home, start_node

KEY = "hosts-test-key-0123"
OWN_NAMES = [
    "127.0.0.1",
    "127.0.0.1:11434",
    "localhost",
    "LOCALHOST:8080",
    "[::1]",
    "[::1]:11434",
    "webui.localhost:3000",
    "printer.local",
    "node.internal",
    "10.1.2.3:11434",
    "192.168.1.5",
    "100.64.0.7",
    "0.0.0.0",
    socket.gethostname(),
]
FOREIGN = ["evil.example", "evil.example:11434", "127.0.0.1.nip.io", "localhost.evil.example", "8.8.8.8"]


def test_a_node_on_loopback_answers_only_to_its_own_names(node: RunningNode) -> None:
    with node.client() as http:
        for host in OWN_NAMES:
            assert http.get("/api/version", headers={"Host": host}).status_code == 200, host
        for host in FOREIGN:
            refused = http.get("/api/tags", headers={"Host": host})
            assert refused.status_code == 403, host
            assert "allowed_hosts" in refused.json()["error"] and repr(host) in refused.json()["error"]
        openai_style = http.get("/v1/models", headers={"Host": "evil.example"})
        assert openai_style.status_code == 403 and "not allowed" in openai_style.json()["error"]["message"]
        assert http.get("/", headers={"Host": "evil.example"}).status_code == 403
        assert http.get("/api/version").status_code == 200  # and it keeps serving


def test_its_public_url_and_the_listed_hosts_pass(home: Path, tmp_path: Path) -> None:
    running = start_node(
        linked_home(home, tmp_path / "home"),
        api_key=KEY,
        tunnel_url="https://my-node.example",
        allowed_hosts=["lan-box", ".corp.example"],
    )
    try:
        with running.client() as http:
            for host in ("my-node.example", "my-node.example:443", "lan-box:11434", "gpu.corp.example"):
                assert http.get("/api/tags", headers={"Host": host}).status_code == 401, host
                keyed = http.get("/api/tags", headers={"Host": host, "Authorization": f"Bearer {KEY}"})
                assert keyed.status_code == 200, host
            for host in ("other.example", "my-node.example.evil.example", "corp.example.evil"):
                assert http.get("/api/tags", headers={"Host": host}).status_code == 403, host
    finally:
        running.stop()


def test_the_node_in_front_of_ollama_checks_hosts_too(node: RunningNode, tmp_path: Path) -> None:
    proxy = start_proxy(tmp_path / "home", node.url, allowed_hosts=["ollama-box"])
    try:
        assert httpx.get(f"{proxy.url}/api/version", headers={"Host": "ollama-box"}).status_code == 200
        assert httpx.get(f"{proxy.url}/api/version", headers={"Host": "localhost"}).status_code == 200
        refused = httpx.get(f"{proxy.url}/api/version", headers={"Host": "evil.example"})
        assert refused.status_code == 403 and "allowed_hosts" in refused.json()["error"]
    finally:
        proxy.stop()


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.20"])
def test_a_node_bound_beyond_loopback_takes_any_host_as_ollama_does(bind: str, tmp_path: Path) -> None:
    policy = HostPolicy.for_node(Settings(home=tmp_path, host=bind), lambda: None)
    assert policy.allows("evil.example") and policy.allows("anything:1")


def test_the_public_url_is_read_as_it_changes(tmp_path: Path) -> None:
    current: list[str | None] = [None]
    policy = HostPolicy.for_node(Settings(home=tmp_path), lambda: current[0])
    assert not policy.allows("abc.trycloudflare.com")
    current[0] = "https://abc.trycloudflare.com"
    assert policy.allows("abc.trycloudflare.com") and policy.allows("ABC.trycloudflare.com.:443")
    current[0] = "https://user:pw@def.trycloudflare.com"  # a new tunnel: the old name goes
    assert policy.allows("def.trycloudflare.com") and not policy.allows("abc.trycloudflare.com")
    assert host_of("[::1]:80") == "::1" and host_of("[::1") is None and not policy.allows("[::1")
