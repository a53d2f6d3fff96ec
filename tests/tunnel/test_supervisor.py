"""The supervisor: URLs announced, tunnels reopened with backoff, nothing left running after close."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from avocado.tunnel import (
    CloudflaredTunnel,
    LocalTunnel,
    SshTunnel,
    Tunnel,
    TunnelStartError,
    TunnelSupervisor,
    TunnelTimeout,
    UrlCallback,
)
from avocado.tunnel.process import orphan_guard
from tests.tunnel.support import BODY, LocalNode, Sshd, cloudflared_standin, free_port, until, wait_gone

Calls = list[tuple[str, str | None]]


def recorder(calls: Calls) -> UrlCallback:
    async def on_url_change(url: str, previous: str | None) -> None:
        calls.append((url, previous))

    return on_url_change


def ssh_tunnel(sshd: Sshd, local_node: LocalNode, tmp_path: Path, target: str | None = None) -> SshTunnel:
    return SshTunnel(
        local_node.url, target or sshd.target, state_dir=tmp_path, identity_file=sshd.identity, open_timeout=8
    )


async def get(url: str) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return (await client.get(url)).text


def test_url_announced_and_reannounced_after_the_program_dies(
    sshd: Sshd, local_node: LocalNode, tmp_path: Path
) -> None:
    calls: Calls = []
    tunnel = ssh_tunnel(sshd, local_node, tmp_path)
    supervisor = TunnelSupervisor(
        tunnel,
        local_url=local_node.url,
        on_url_change=recorder(calls),
        check_interval=0.2,
        first_backoff=0.05,
    )

    async def scenario() -> tuple[int, int]:
        await supervisor.start()
        try:
            first = await supervisor.wait_online(8)
            assert calls == [(first, None)] and await get(first) == BODY
            await until(lambda: supervisor.status().last_check_ok is True, what="a passing check")
            first_pid = tunnel.pid
            assert first_pid is not None
            os.kill(first_pid, signal.SIGKILL)
            await until(lambda: len(calls) == 2, what="the new URL")
            second = await supervisor.wait_online(8)
            assert calls[1] == (second, first) and second != first
            assert await get(second) == BODY
            status = supervisor.status()
            assert (status.state, status.public_url, status.restarts) == ("online", second, 1)
            assert status.last_error is not None and "exited with status" in status.last_error
            second_pid = tunnel.pid
            assert second_pid is not None
        finally:
            await supervisor.close()
        return first_pid, second_pid

    first_pid, second_pid = asyncio.run(scenario())
    assert wait_gone(first_pid) and wait_gone(second_pid)
    assert supervisor.status().state == "stopped" and supervisor.status().public_url is None


def test_failing_checks_reopen_the_tunnel(sshd: Sshd, local_node: LocalNode, tmp_path: Path) -> None:
    """A stopped ssh keeps its process but forwards nothing: only the end-to-end check can tell."""
    calls: Calls = []
    tunnel = ssh_tunnel(sshd, local_node, tmp_path)
    supervisor = TunnelSupervisor(
        tunnel,
        on_url_change=recorder(calls),
        check_interval=0.2,
        check_timeout=0.5,
        failures_before_restart=2,
        first_backoff=0.05,
    )

    async def scenario() -> int:
        await supervisor.start()
        try:
            first = await supervisor.wait_online(8)
            pid = tunnel.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            await until(lambda: len(calls) == 2, what="the tunnel to be reopened")
            assert calls[1][1] == first and await get(calls[1][0]) == BODY
            status = supervisor.status()
            assert status.restarts == 1 and status.last_error is not None
            assert status.last_error.startswith(f"GET {first}/ did not answer within 0.5 s"), (
                status.last_error
            )
        finally:
            await supervisor.close()
        return pid

    assert wait_gone(asyncio.run(scenario()))


def test_unreachable_server_is_retried_with_growing_backoff(local_node: LocalNode, tmp_path: Path) -> None:
    tunnel = SshTunnel(local_node.url, f"nobody@127.0.0.1:{free_port()}", state_dir=tmp_path)
    supervisor = TunnelSupervisor(tunnel, first_backoff=0.05, max_backoff=0.2, jitter=0)

    async def scenario() -> None:
        await supervisor.start()
        try:
            await until(lambda: supervisor.restarts >= 4, what="four retries")
            status = supervisor.status()
            assert status.state == "reconnecting" and status.public_url is None
            assert status.last_error is not None and "Connection refused" in status.last_error
            with pytest.raises(TunnelTimeout, match=r"not online within 0\.1 s; last error: ssh"):
                await supervisor.wait_online(0.1)
        finally:
            await supervisor.close()

    asyncio.run(scenario())
    assert list(supervisor.backoff.history)[:4] == [0.05, 0.1, 0.2, 0.2]


def test_a_dead_public_url_is_reopened(local_node: LocalNode) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    calls: Calls = []
    supervisor = TunnelSupervisor(
        LocalTunnel(local_node.url, public_url=dead),
        local_url=local_node.url,
        on_url_change=recorder(calls),
        check_interval=0.05,
        first_backoff=0.05,
    )

    async def scenario() -> None:
        await supervisor.start()
        try:
            await until(lambda: supervisor.restarts >= 2, what="two reopenings")
        finally:
            await supervisor.close()

    asyncio.run(scenario())
    status = supervisor.status()
    assert status.last_check_ok is False and status.last_error is not None
    assert status.last_error.startswith(f"GET {dead}/ failed: ConnectError")
    assert calls == [(dead, None)]  # the same URL each time: announced once


def test_the_node_being_down_is_not_held_against_the_tunnel() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    supervisor = TunnelSupervisor(LocalTunnel(dead), local_url=dead, check_interval=0.05, first_backoff=0.05)

    async def scenario() -> None:
        await supervisor.start()
        try:
            await until(
                lambda: "locally either" in (supervisor.status().last_error or ""), what="a failed check"
            )
            await asyncio.sleep(0.3)
            assert supervisor.restarts == 0 and supervisor.status().state == "online"
        finally:
            await supervisor.close()

    asyncio.run(scenario())


def test_none_provider_is_checked_and_online(local_node: LocalNode) -> None:
    calls: Calls = []
    supervisor = TunnelSupervisor(
        LocalTunnel(local_node.url), on_url_change=recorder(calls), check_interval=0.05
    )

    async def scenario() -> None:
        await supervisor.start()
        try:
            assert await supervisor.wait_online(5) == local_node.url
            await until(lambda: supervisor.status().last_check is not None, what="a check")
        finally:
            await supervisor.close()

    asyncio.run(scenario())
    assert calls == [(local_node.url, None)] and supervisor.status().last_check_ok is True


class ScriptedTunnel(Tunnel):
    """Opens at the URLs it is given, one per open; fails where the script says ``None``."""

    name = "scripted"

    def __init__(self, script: list[str | None]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.script = script
        self.up = False

    async def open(self) -> str:
        url = self.script.pop(0)
        if url is None:
            raise TunnelStartError("scripted failure with secret s3cr3t-value")
        self.up, self.public_url = True, url
        return url

    async def close(self) -> None:
        self.up = False

    def alive(self) -> bool:
        return self.up

    def secrets(self) -> tuple[str, ...]:
        return ("s3cr3t-value",)


def test_a_factory_makes_a_tunnel_per_try_and_callback_errors_are_contained() -> None:
    script: list[str | None] = [None, "https://a.example", "https://a.example", "https://b.example"]
    made: list[ScriptedTunnel] = []
    calls: Calls = []

    def factory() -> Tunnel:
        made.append(ScriptedTunnel(script))
        return made[-1]

    async def on_url_change(url: str, previous: str | None) -> None:
        calls.append((url, previous))
        raise RuntimeError("the callback fails; the supervisor goes on")

    supervisor = TunnelSupervisor(
        factory, on_url_change=on_url_change, check_interval=None, first_backoff=0.01, poll_interval=0.01
    )

    def online_with(count: int) -> bool:
        return len(made) == count and supervisor.status().state == "online"

    async def scenario() -> None:
        await supervisor.start()
        try:
            await until(lambda: online_with(2), what="the second tunnel online")
            assert supervisor.status().last_error == "scripted failure with secret ***"
            for count in (3, 4):
                made[-1].up = False
                await until(lambda: online_with(count), what=f"tunnel {count} online")  # noqa: B023
        finally:
            await supervisor.close()

    asyncio.run(scenario())
    assert calls == [("https://a.example", None), ("https://b.example", "https://a.example")]
    assert supervisor.restarts == 3 and supervisor.status().last_error == "the scripted tunnel closed"


def test_close_while_opening_stops_the_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = cloudflared_standin(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_MODE", "silent")
    tunnel = CloudflaredTunnel("http://127.0.0.1:1", open_timeout=60)
    supervisor = TunnelSupervisor(tunnel)

    async def scenario() -> int:
        await supervisor.start()
        await until(lambda: tunnel.pid is not None, what="cloudflared to start")
        pid = tunnel.pid
        assert pid is not None and supervisor.status().state == "starting"
        await supervisor.close()
        return pid

    assert wait_gone(asyncio.run(scenario()))


ORPHAN = """
import asyncio
from avocado.tunnel import CloudflaredTunnel

async def main():
    tunnel = CloudflaredTunnel("http://127.0.0.1:1")
    await tunnel.open()
    print(tunnel.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(not orphan_guard(), reason="needs util-linux setpriv with --pdeathsig (Linux)")
def test_the_program_goes_when_the_node_is_killed(tmp_path: Path) -> None:
    directory = cloudflared_standin(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ['PATH']}"}
    node = subprocess.Popen([sys.executable, "-c", ORPHAN], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        pid = int(node.stdout.readline())
    finally:
        node.kill()  # no chance to stop anything
        node.wait(timeout=5)
    assert wait_gone(pid), "the tunnel program outlived the node"
