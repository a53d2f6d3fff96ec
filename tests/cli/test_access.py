"""A node with a public URL requires an API key: generated on first use, printed once, or given; left
open only when asked to be."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from avocado.config import Settings
from avocado.node.access import OpenNodeRefused
from avocado.node.app import create_app
from tests.support import free_port, linked_home, wait_for_serve
from tests.tunnel.support import Sshd

AVOCADO = [sys.executable, "-m", "avocado"]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVOCADO_", "OLLAMA_"))}
    return {**env, "AVOCADO_HOME": str(home)}


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then what the process wrote to stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=30)
    return err


def public_url_of(env: dict[str, str], port: int, key: str) -> str:
    """The tunnel's URL, once it is up (``avocado status`` finds the kept key itself)."""
    deadline = time.monotonic() + 30
    while True:
        shown = subprocess.run([*AVOCADO, "status", "--json"], env=env, capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        if report["public_url"] not in (None, f"http://127.0.0.1:{port}"):
            assert key not in shown.stdout
            return str(report["public_url"])
        assert time.monotonic() < deadline, report
        time.sleep(0.2)


def test_a_tunnel_without_a_key_gets_a_generated_one_printed_once(
    home: Path, tmp_path: Path, sshd: Sshd
) -> None:
    node_home = linked_home(home, tmp_path / "home")
    env, port = clean_env(node_home), free_port()
    command = [*AVOCADO, "serve", "--port", str(port), "--tunnel", "ssh"]
    command += ["--tunnel-ssh", sshd.target, "--tunnel-ssh-key", str(sshd.identity)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    kept = node_home / "state" / "api-key"
    try:
        wait_for_serve(process, port, 60)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        key = kept.read_text().strip()
        url = public_url_of(env, port, key)
        for base in (url, f"http://127.0.0.1:{port}"):  # through the tunnel, and on loopback
            refused = httpx.get(f"{base}/api/tags")
            assert refused.status_code == 401 and "API key" in refused.json()["error"]
            assert httpx.post(f"{base}/api/pull", json={"model": "x"}).status_code == 401
            keyed = httpx.get(f"{base}/api/tags", headers={"Authorization": f"Bearer {key}"})
            assert keyed.status_code == 200
        assert httpx.get(f"{url}/").text == "Ollama is running"  # the tunnel's own check stays open
        wide = {**env, "COLUMNS": "300"}  # one row a line
        shown = subprocess.run([*AVOCADO, "status"], env=wide, capture_output=True, text=True)
        assert f"API key required (generated, kept in {kept})" in shown.stdout and key not in shown.stdout
    finally:
        err = stop(process)
    assert err.count(key) == 1 and f"kept in {kept}" in err
    assert key not in (node_home / "logs" / "avocado.log").read_text()

    again = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_serve(again, port, 60)
        assert httpx.get(f"http://127.0.0.1:{port}/api/tags").status_code == 401
        assert httpx.get(
            f"http://127.0.0.1:{port}/api/tags", headers={"Authorization": f"Bearer {key}"}
        ).is_success
    finally:
        err = stop(again)
    assert key not in err and f"using the one kept in {kept}" in err  # the same key, not shown again


def test_no_public_url_without_a_key_unless_asked_for(home: Path, tmp_path: Path) -> None:
    with pytest.raises(OpenNodeRefused, match="--public-without-key"):
        create_app(Settings(home=tmp_path / "bare", tunnel_url="https://node.example"))
    with pytest.raises(OpenNodeRefused, match="requires an API key"):
        create_app(Settings(home=tmp_path / "bare", tunnel="ssh"))

    node_home = linked_home(home, tmp_path / "home")
    env, port = clean_env(node_home), free_port()
    public = ["--port", str(port), "--tunnel-url", f"http://localhost:{port}"]
    kept = node_home / "state" / "api-key"
    kept.write_text("a-key-others-may-read\n")
    kept.chmod(0o644)
    refused = subprocess.run(
        [*AVOCADO, "serve", *public], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "may be read by others" in refused.stderr
    kept.unlink()

    process = subprocess.Popen(
        [*AVOCADO, "serve", *public, "--public-without-key"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_serve(process, port, 60)
        assert httpx.get(f"http://localhost:{port}/api/tags").status_code == 200  # open, as asked
        report = httpx.get(f"http://localhost:{port}/api/avocado/status").json()
        assert report["api_key"] == {"required": False, "source": None, "open_by_choice": True}
        assert not kept.exists()
    finally:
        stop(process)


def test_a_node_without_a_public_url_needs_no_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, host="0.0.0.0")  # LAN serving is not a public URL
    assert not settings.has_public_url and create_app(settings) is not None
