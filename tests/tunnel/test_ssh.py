"""``ssh -R`` through a real OpenSSH server on loopback."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from avocado.tunnel import SshTunnel, TunnelStartError, TunnelUnavailable, find_public_url, parse_target
from avocado.tunnel.ssh import SshTarget
from tests.tunnel.support import BODY, LocalNode, Sshd, free_port, wait_gone


def tunnel_to(sshd: Sshd, local_node: LocalNode, tmp_path: Path, **kwargs: object) -> SshTunnel:
    return SshTunnel(
        local_node.url,
        sshd.target,
        state_dir=tmp_path / "state",
        identity_file=sshd.identity,
        log_path=tmp_path / "logs" / "tunnel.log",
        open_timeout=8,
        **kwargs,
    )


def test_allocated_port_answers_through_the_tunnel(sshd: Sshd, local_node: LocalNode, tmp_path: Path) -> None:
    tunnel = tunnel_to(sshd, local_node, tmp_path)

    async def scenario() -> tuple[str, int]:
        url = await tunnel.open()
        try:
            assert tunnel.alive() and tunnel.public_url == url
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"{url}/")
            assert (response.status_code, response.text) == (200, BODY)
            pid = tunnel.pid
            assert pid is not None
        finally:
            await tunnel.close()
        return url, pid

    url, pid = asyncio.run(scenario())
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", url)
    assert match and int(match[1]) not in (0, sshd.port)
    assert wait_gone(pid) and not tunnel.alive() and tunnel.pid is None
    host_key = (sshd.directory / "host_key.pub").read_text().split()[1]
    assert host_key in (tmp_path / "state" / "known_hosts").read_text()  # pinned there, not in ~/.ssh
    log = (tmp_path / "logs" / "tunnel.log").read_text()
    assert f"Allocated port {match[1]} for remote forward" in log and "debug1" not in log
    assert "exited with status" in log


def test_explicit_url_and_fixed_remote_port(sshd: Sshd, local_node: LocalNode, tmp_path: Path) -> None:
    port = free_port()
    given = f"http://127.0.0.1:{port}/"
    explicit = tunnel_to(sshd, local_node, tmp_path / "a", remote_port=port, public_url=given)
    fixed = tunnel_to(sshd, local_node, tmp_path / "b", remote_port=free_port())

    async def scenario() -> None:
        for tunnel, expected in (
            (explicit, given.rstrip("/")),
            (fixed, f"http://127.0.0.1:{fixed.remote_port}"),
        ):
            url = await tunnel.open()
            try:
                assert url == expected
                async with httpx.AsyncClient(trust_env=False) as client:
                    assert (await client.get(url)).text == BODY
            finally:
                await tunnel.close()

    asyncio.run(scenario())


def test_url_printed_by_the_server(sshd: Sshd, local_node: LocalNode, tmp_path: Path) -> None:
    """As localhost.run does it: a session whose output says where the tunnel is."""
    port = free_port()
    sshd.banner(
        "Welcome! Follow your favourite reverse tunnel at [https://social.example/tunnels].\n"
        "Docs: https://docs.example/\n"
        f"abc123.example tunneled with tls termination, http://127.0.0.1:{port}\n"
    )
    tunnel = tunnel_to(sshd, local_node, tmp_path, remote_port=port, session=True)
    assert "-N" not in tunnel.argv()

    async def scenario() -> str:
        url = await tunnel.open()
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                assert (await client.get(url)).text == BODY
        finally:
            await tunnel.close()
        return url

    assert asyncio.run(scenario()) == f"http://127.0.0.1:{port}"


def test_unreachable_server_is_a_readable_error(local_node: LocalNode, tmp_path: Path) -> None:
    tunnel = SshTunnel(local_node.url, f"nobody@127.0.0.1:{free_port()}", state_dir=tmp_path, open_timeout=8)
    with pytest.raises(TunnelStartError) as error:
        asyncio.run(tunnel.open())
    message = str(error.value)
    assert "exited with status 255" in message and "Connection refused" in message, message
    assert not tunnel.alive()


def test_refused_forward_ends_the_tunnel(sshd: Sshd, local_node: LocalNode, tmp_path: Path) -> None:
    port = free_port()
    holder = tunnel_to(sshd, local_node, tmp_path / "a", remote_port=port)
    second = tunnel_to(sshd, local_node, tmp_path / "b", remote_port=port)

    async def scenario() -> None:
        await holder.open()
        try:
            with pytest.raises(
                TunnelStartError, match=f"remote port forwarding failed for listen port {port}"
            ):
                await second.open()
            assert not second.alive() and second.pid is None
        finally:
            await holder.close()

    asyncio.run(scenario())


def test_command_line(tmp_path: Path) -> None:
    tunnel = SshTunnel(
        "http://0.0.0.0:11434",
        "me@[::1]:2222",
        state_dir=tmp_path / "state dir",
        identity_file=tmp_path / "key",
        options=["ServerAliveInterval=5", "ProxyJump jump.example"],
    )
    argv = tunnel.argv()
    assert argv[1:3] == ["-N", "-T"] and argv[-3:] == ["-R", "0:127.0.0.1:11434", "me@::1"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == str(tmp_path / "key")
    options = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    forced = ["BatchMode=yes", "ExitOnForwardFailure=yes", "StrictHostKeyChecking=accept-new"]
    assert all(options.index(o) < options.index("ServerAliveInterval=5") for o in forced)
    assert f'UserKnownHostsFile="{tmp_path / "state dir" / "known_hosts"}"' in options
    # ssh takes the first value given: the caller's ServerAliveInterval beats the default.
    assert options.index("ServerAliveInterval=5") < options.index("ServerAliveInterval=15")
    assert "ProxyJump jump.example" in options and "IdentitiesOnly=yes" in options
    service = SshTunnel("http://127.0.0.1:8080", "nokey@localhost.run", state_dir=tmp_path)
    assert service.session and service.argv()[-2] == "80:127.0.0.1:8080"
    with pytest.raises(TunnelUnavailable, match="Name=value"):
        SshTunnel("http://127.0.0.1:1", "h", state_dir=tmp_path, options=["-oProxyCommand=evil"])


def test_targets() -> None:
    assert parse_target("me@host.example:2222") == SshTarget("me", "host.example", 2222)
    assert parse_target("host.example") == SshTarget(None, "host.example", None)
    assert parse_target("u@[2001:db8::1]:22") == SshTarget("u", "[2001:db8::1]", 22)
    assert str(parse_target("u@[::1]:22")) == "u@[::1]:22"
    for bad in ("", "me@", "host:99999", "a b", "u@::1"):
        with pytest.raises(TunnelUnavailable, match="user@host"):
            parse_target(bad)


def test_public_url_in_service_output() -> None:
    assert find_public_url("abc.lhr.life tunneled with tls termination, https://abc.lhr.life") == (
        "https://abc.lhr.life"
    )
    assert find_public_url("Forwarding HTTP traffic from https://x.serveo.net") == "https://x.serveo.net"
    assert find_public_url("   https://x.a.free.pinggy.link   ") == "https://x.a.free.pinggy.link"
    assert find_public_url("http://a.example https://a.example") == "https://a.example"
    assert find_public_url("Follow your favourite reverse tunnel at [https://twitter.com/x].") is None
    assert find_public_url("To manage custom domains go to https://admin.example/") is None
    assert find_public_url("no url at all") is None
