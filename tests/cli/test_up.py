"""``avocado up`` (what ``make run`` starts): a node, a gateway in front of it and the platform on the
gateway, used as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.support import GREEDY, SMOLLM, free_port, linked_home, wait_for_serve

AVOCADO = [sys.executable, "-m", "avocado"]


@dataclass
class Up:
    process: subprocess.Popen[str]
    gateway: str
    node: str
    platform: str
    home: Path


@pytest.fixture
def up(home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Up]:
    """``avocado up`` on a home of its own; ``@pytest.mark.up_env(NAME=value)`` adds to its environment."""
    marker = request.node.get_closest_marker("up_env")
    port, node_port, platform_port = free_port(), free_port(), free_port()
    up_home = linked_home(home, tmp_path / "up-home")
    env = {**os.environ, "AVOCADO_HOME": str(up_home)}
    for name in [name for name in env if name.startswith("AVOCADO_PLATFORM_")]:
        env.pop(name)
    for name in (
        "AVOCADO_DATABASE_URL",
        "AVOCADO_API_KEY",
        "AVOCADO_MASTER_KEY",
        "AVOCADO_PORT",
        "AVOCADO_HOST",
        "AVOCADO_REQUIRE_KEY",
    ):
        env.pop(name, None)
    env.update(marker.kwargs if marker else {})
    command = [*AVOCADO, "up", "--port", str(port), "--node-port", str(node_port)]
    command += ["--platform-port", str(platform_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_serve(process, port, 120)
        gateway, node = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{node_port}"
        yield Up(process, gateway, node, f"http://127.0.0.1:{platform_port}", up_home)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def cli(up: Up, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVOCADO_HOST": up.gateway, "AVOCADO_HOME": str(up.home)}
    for name in ("AVOCADO_API_KEY", "AVOCADO_MASTER_KEY", "AVOCADO_GATEWAY_URL"):
        env.pop(name, None)
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

    # The platform runs on the gateway: the first account is the admin, and sees the gateway's models.
    with httpx.Client(base_url=up.platform, timeout=30) as platform:
        account = {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
        first = platform.post("/api/v1/auth/register", json=account)
        assert first.status_code == 201 and first.json()["role"] == "admin"
        login = {"email": account["email"], "password": account["password"]}
        spoofed = {"X-Forwarded-For": "203.0.113.9"}  # no trusted proxies: uvicorn must not believe it
        tokens = platform.post("/api/v1/auth/login", json=login, headers=spoofed).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        models = platform.get("/api/v1/models", headers=auth).json()["items"]
        assert SMOLLM in {m["name"] for m in models}
        signins = platform.get("/api/v1/admin/audit", params={"action": "signin.succeeded"}, headers=auth)
        assert [event["address"] for event in signins.json()["items"]] == ["127.0.0.1"]

        # It holds the gateway's master key: management is on, and the model list above was
        # metered as Ada's (the gateway writes its counts every 5 s).
        assert platform.get("/api/v1/auth/config").json()["management"] is True
        gateway_nodes = platform.get("/api/v1/admin/gateway/nodes", headers=auth).json()["items"]
        assert [n["url"] for n in gateway_nodes] == [up.node]
        deadline = time.monotonic() + 20
        while not (usage := platform.get("/api/v1/admin/gateway/usage", headers=auth).json()["items"]):
            assert time.monotonic() < deadline, "the gateway never counted Ada's request"
            time.sleep(0.5)
        assert [(row["email"], row["requests"]) for row in usage] == [("ada@example.com", 1)]
    assert (up.home / "state" / "platform-signing-key").is_file()

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
    assert "is up" in err and up.gateway in err and up.node in err and up.platform in err
    assert up.process.returncode == 0, err
    for url in (up.gateway, up.node, up.platform):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


@pytest.mark.timeout(300)
def test_up_lets_sdk_clients_in_and_avocado_keys_manage_its_keys(up: Up) -> None:
    """The README's OpenAI example (``api_key="unused"``) works, and so do keys made with
    ``avocado keys`` against the master key ``avocado up`` generated into the home."""
    chat = {
        "model": SMOLLM,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 3,
        "temperature": 0,
    }
    sdk = openai.OpenAI(base_url=f"{up.gateway}/v1", api_key="unused", max_retries=0)
    assert sdk.chat.completions.create(**chat).choices[0].message.content
    ollama_client = ollama.Client(host=up.gateway, headers={"Authorization": "Bearer whatever"})
    assert ollama_client.generate(SMOLLM, "Hi", options={**GREEDY, "num_predict": 2}).done

    master_file = up.home / "state" / "gateway-master-key"
    assert master_file.stat().st_mode & 0o777 == 0o600
    created = cli(up, "keys", "create", "limited", "--rpm", "1")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("avk-") and master_file.read_text().strip() not in created.stdout + created.stderr
    limited = openai.OpenAI(base_url=f"{up.gateway}/v1", api_key=key, max_retries=0)
    assert limited.chat.completions.create(**chat).choices[0].message.content
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(**chat)
    listed = cli(up, "keys", "list")
    assert listed.returncode == 0 and "limited" in listed.stdout and "1 rpm" in listed.stdout
    assert httpx.get(f"{up.gateway}/metrics", timeout=10).status_code == 200  # open: no keys required

    up.process.send_signal(signal.SIGTERM)
    _, err = up.process.communicate(timeout=60)
    assert err.count(f"master key was generated into {master_file}") == 1
    assert master_file.read_text().strip() not in err


def test_a_killed_up_takes_its_node_and_platform_along(up: Up) -> None:
    up.process.kill()
    up.process.communicate(timeout=60)  # returns only once the children, which share the pipes, are gone
    for url in (up.node, up.platform):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


@pytest.mark.up_env(AVOCADO_TUNNEL_URL="https://avocado-up.example")
def test_up_with_a_public_url_sends_its_node_the_key_the_node_made(up: Up) -> None:
    """A public URL makes the node generate a key; the gateway ``avocado up`` puts in front of it
    sends that key, so requests through the gateway work while the node refuses callers without it."""
    assert (up.home / "state" / "api-key").exists()
    assert httpx.get(f"{up.node}/api/tags", timeout=10).status_code == 401
    answer = httpx.post(
        f"{up.gateway}/api/generate",
        json={"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {**GREEDY, "num_predict": 2}},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["done"]
