"""Cloudflare quick tunnels, with a stand-in ``cloudflared`` first on PATH."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from avocado.tunnel import CloudflaredTunnel, TunnelStartError, TunnelTimeout, TunnelUnavailable
from tests.tunnel.support import cloudflared_standin, wait_gone

LOCAL = "http://127.0.0.1:11434"
QUICK = "https://sample-words-for-tests.trycloudflare.com"


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = cloudflared_standin(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def test_quick_tunnel_url_is_read_and_the_program_stopped(standin: Path, tmp_path: Path) -> None:
    tunnel = CloudflaredTunnel(LOCAL, log_path=tmp_path / "tunnel.log")

    async def scenario() -> tuple[str, int]:
        url = await tunnel.open()
        pid = tunnel.pid
        assert pid is not None and tunnel.alive()
        await tunnel.close()
        return url, pid

    url, pid = asyncio.run(scenario())
    assert url == QUICK and wait_gone(pid) and not tunnel.alive()
    assert json.loads((standin / "argv.json").read_text()) == ["tunnel", "--no-autoupdate", "--url", LOCAL]
    log = (tmp_path / "tunnel.log").read_text()
    assert "Requesting new quick Tunnel" in log and QUICK in log and "exited with status" in log


def test_output_is_drained_while_waiting(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Far more output than a pipe holds comes before the URL: the program must not block on it."""
    monkeypatch.setenv("STANDIN_MODE", "flood")
    tunnel = CloudflaredTunnel(LOCAL, open_timeout=8)

    async def scenario() -> str:
        try:
            return await tunnel.open()
        finally:
            await tunnel.close()

    assert asyncio.run(scenario()) == QUICK


def test_exit_before_the_url_is_a_readable_error(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "fail")
    with pytest.raises(
        TunnelStartError, match=r"cloudflared exited with status 1: .*failed to request quick Tunnel"
    ):
        asyncio.run(CloudflaredTunnel(LOCAL).open())


def test_no_url_in_time(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "silent")
    tunnel = CloudflaredTunnel(LOCAL, open_timeout=0.5)
    with pytest.raises(
        TunnelTimeout, match=r"did not report a trycloudflare.com URL within 0.5 s: .*Requesting"
    ):
        asyncio.run(tunnel.open())
    assert tunnel.pid is None and not tunnel.alive()


def test_a_program_ignoring_sigterm_is_killed(standin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_MODE", "ignore-term")
    tunnel = CloudflaredTunnel(LOCAL, stop_timeout=0.3)

    async def scenario() -> int:
        await tunnel.open()
        pid = tunnel.pid
        assert pid is not None
        await tunnel.close()
        return pid

    assert wait_gone(asyncio.run(scenario()), 1.0)


def test_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TunnelUnavailable, match="needs the cloudflared program on PATH"):
        CloudflaredTunnel(LOCAL)
