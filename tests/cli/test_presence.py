"""``avocado serve --announce`` as a process: the home lock, ``avocado status``, ``avocado discover``,
and ``offline`` announced on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from avocado.cli.presence import print_status
from avocado.discovery import DiscoveryWatcher, Registry
from tests.discovery.support import require_broker
from tests.support import SMOLLM, free_port, linked_home, start_node, wait_for_serve
from tests.tunnel.support import Sshd

AVOCADO = [sys.executable, "-m", "avocado"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AVOCADO, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_serve_announces_holds_its_home_and_says_offline_on_sigterm(home: Path, tmp_path: Path) -> None:
    broker = require_broker()
    node_home = linked_home(home, tmp_path / "home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
    env |= {"AVOCADO_HOME": str(node_home), "AVOCADO_AMQP_URL": broker, "AVOCADO_ANNOUNCE_INTERVAL": "60"}
    process = subprocess.Popen(
        [*AVOCADO, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_serve(process, port, 60)

        second = run_cli("serve", "--port", str(free_port()), env=env)
        assert second.returncode == 2
        assert f"another avocado node is using {node_home} (pid {process.pid}" in second.stderr

        shown = run_cli("status", env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"http://127.0.0.1:{port}" in shown.stdout and "connected" in shown.stdout
        assert "guest:guest" not in shown.stdout
        report = json.loads(run_cli("status", "--json", env=env).stdout)
        service_id = report["service_id"]

        found = run_cli("discover", "--json", "--wait", "3", env=env)
        assert found.returncode == 0, found.stderr
        nodes = {n["service_id"]: n for n in json.loads(found.stdout)}
        assert nodes[service_id]["url"] == f"http://127.0.0.1:{port}"
        assert SMOLLM in {m["name"] for m in nodes[service_id]["models"]}

        async def sigterm_says_offline() -> None:
            registry = Registry()
            async with DiscoveryWatcher(broker, registry):
                await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=10)
                process.send_signal(signal.SIGTERM)
                await registry.wait_for(lambda r: r.get(service_id) is None, timeout=15)

        asyncio.run(sigterm_says_offline())
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "guest:guest" not in err

    after = run_cli("status", env=env)
    assert after.returncode == 1 and "no avocado node is running" in after.stderr


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_serve_stops_its_tunnel_child_on_sigterm(home: Path, tmp_path: Path, sshd: Sshd) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
    env["AVOCADO_HOME"] = str(linked_home(home, tmp_path / "home"))
    command = [*AVOCADO, "serve", "--port", str(port), "--tunnel", "ssh"]
    command += ["--tunnel-ssh", sshd.target, "--tunnel-ssh-key", str(sshd.identity)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_serve(process, port, 60)
        deadline = time.monotonic() + 20
        while (report := json.loads(run_cli("status", "--json", env=env).stdout))["public_url"] in (
            None,
            f"http://127.0.0.1:{port}",
        ):
            assert time.monotonic() < deadline, report
            time.sleep(0.2)
        assert httpx.get(report["public_url"]).text == "Ollama is running"  # through the tunnel
        children = children_of(process.pid)
        assert children, "the ssh tunnel should be a child of serve"
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
    time.sleep(0.5)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert not alive, f"children outlived serve: {alive}"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_discover_watch_prints_each_change(home: Path, tmp_path: Path) -> None:
    broker = require_broker()
    running = start_node(linked_home(home, tmp_path / "home"), amqp_url=broker, announce_interval=60)
    env = {**os.environ, "AVOCADO_AMQP_URL": broker}
    watcher = subprocess.Popen(
        [*AVOCADO, "discover", "--watch", "--json", "--wait", "2"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        service_id = running.client().get("/api/avocado/status").json()["service_id"]
        assert watcher.stdout is not None

        def next_state() -> dict[str, str]:
            while True:
                line = watcher.stdout.readline()
                assert line, "discover --watch ended"
                mine = [n for n in json.loads(line) if n["service_id"] == service_id]
                if mine:
                    return {"status": mine[0]["status"], "url": mine[0]["url"]}

        assert next_state() == {"status": "online", "url": running.url}
        running.client().post("/api/avocado/drain")
        while next_state()["status"] != "draining":
            pass
    finally:
        watcher.terminate()
        watcher.wait(10)
        running.stop()


def test_status_prints_each_loaded_models_prompt_cache(capsys: pytest.CaptureFixture[str]) -> None:
    cache = {"prompts": 3, "size": 5 << 20, "limit": 512 << 20}
    engine = {"kind": "embedded", "loaded": [SMOLLM], "models": 2, "prompt_cache": {SMOLLM: cache}}
    print_status({"version": "0.1.0", "status": "online", "tunnel": {}, "engine": engine})
    shown = capsys.readouterr().out
    assert f"prompt cache  {SMOLLM}: 3 prompts, 5.0 MiB of 512.0 MiB" in shown
    assert "engine        kind embedded, loaded ['smollm2:135m'], models 2\n" in shown
