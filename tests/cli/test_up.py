"""``avocado up`` (what ``make run`` starts): a node and a gateway in front of it, used as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import pytest

from tests.support import GREEDY, SMOLLM, free_port, linked_home, wait_for_serve

AVOCADO = [sys.executable, "-m", "avocado"]


@dataclass
class Up:
    process: subprocess.Popen[str]
    gateway: str
    node: str


@pytest.fixture
def up(home: Path, tmp_path: Path) -> Iterator[Up]:
    port, node_port = free_port(), free_port()
    env = {**os.environ, "AVOCADO_HOME": str(linked_home(home, tmp_path / "up-home"))}
    for name in ("AVOCADO_API_KEY", "AVOCADO_MASTER_KEY", "AVOCADO_PORT", "AVOCADO_HOST"):
        env.pop(name, None)
    command = [*AVOCADO, "up", "--port", str(port), "--node-port", str(node_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_serve(process, port, 120)
        yield Up(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{node_port}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def cli(up: Up, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVOCADO_HOST": up.gateway}
    env.pop("AVOCADO_API_KEY", None)
    return subprocess.run(
        [*AVOCADO, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.mark.timeout(300)
def test_up_serves_through_the_gateway_and_stops_both(up: Up) -> None:
    client = ollama.Client(host=up.gateway)
    assert SMOLLM in {m.model for m in client.list().models}
    reply = client.chat(SMOLLM, [{"role": "user", "content": "Hi"}], options={**GREEDY, "num_predict": 3})
    assert reply.done and reply.message.content
    nodes = httpx.get(f"{up.gateway}/api/avocado/nodes", timeout=10).json()["nodes"]
    assert [n["url"] for n in nodes] == [up.node] and nodes[0]["healthy"]

    # The client commands work against the gateway's address, management included.
    listing = cli(up, "gateway", "nodes")
    assert listing.returncode == 0 and up.node in listing.stdout and "healthy" in listing.stdout
    copied = cli(up, "cp", SMOLLM, "mine:1")
    assert copied.returncode == 0, copied.stderr
    listed = cli(up, "list")
    assert listed.returncode == 0 and "mine:1" in listed.stdout
    removed = cli(up, "rm", "mine:1")
    assert removed.returncode == 0, removed.stderr
    assert "mine:1" not in cli(up, "list").stdout

    up.process.send_signal(signal.SIGTERM)
    _, err = up.process.communicate(timeout=60)
    assert "is up" in err and up.gateway in err and up.node in err
    assert up.process.returncode == 0, err
    for url in (up.gateway, up.node):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


def test_a_killed_up_takes_its_node_along(up: Up) -> None:
    up.process.kill()
    up.process.communicate(timeout=60)  # returns only once the node, which shares the pipes, is gone too
    with pytest.raises(httpx.TransportError):
        httpx.get(up.node, timeout=2)
