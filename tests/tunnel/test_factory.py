"""``make_tunnel``: provider names and settings to tunnels, with clear errors for what cannot work."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from avocado.tunnel import (
    PROVIDERS,
    CloudflaredTunnel,
    LocalTunnel,
    NgrokTunnel,
    SshTunnel,
    TunnelUnavailable,
    make_tunnel,
)
from tests.tunnel.support import cloudflared_standin

LOCAL = "http://127.0.0.1:11434"


def test_none_gives_the_node_its_own_url(tmp_path: Path) -> None:
    tunnel = make_tunnel("none", LOCAL + "/", state_dir=tmp_path)
    assert isinstance(tunnel, LocalTunnel) and not tunnel.alive()

    async def scenario() -> str:
        url = await tunnel.open()
        assert tunnel.alive()
        await tunnel.close()
        return url

    assert asyncio.run(scenario()) == LOCAL and not tunnel.alive()
    fronted = make_tunnel("none", LOCAL, state_dir=tmp_path, public_url="https://llm.example.org")
    assert asyncio.run(fronted.open()) == "https://llm.example.org"


def test_each_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PROVIDERS == ("none", "ssh", "cloudflared", "ngrok")
    directory = cloudflared_standin(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NGROK_AUTHTOKEN", "token-from-the-environment")
    ssh = make_tunnel(
        "ssh",
        LOCAL,
        state_dir=tmp_path,
        ssh_target="me@example.org:2222",
        ssh_identity=tmp_path / "key",
        ssh_options=["ProxyJump jump.example.org"],
        public_url="https://me.example.org",
        log_path=tmp_path / "tunnel.log",
    )
    assert isinstance(ssh, SshTunnel) and ssh.given_url == "https://me.example.org"
    assert ssh.identity_file == tmp_path / "key" and ssh.options == ("ProxyJump jump.example.org",)
    assert isinstance(make_tunnel("Cloudflared", LOCAL, state_dir=tmp_path), CloudflaredTunnel)
    ngrok = make_tunnel("ngrok", LOCAL, state_dir=tmp_path, domain="me.ngrok.app")
    assert isinstance(ngrok, NgrokTunnel) and ngrok.domain == "me.ngrok.app"
    assert ngrok.secrets() == ("token-from-the-environment",)


@pytest.mark.parametrize(
    ("provider", "settings", "message"),
    [
        ("frp", {}, "unknown tunnel provider 'frp'; choose one of none, ssh, cloudflared, ngrok"),
        ("ssh", {}, "--tunnel ssh needs a target"),
        ("ssh", {"ssh_target": "me@"}, "--tunnel ssh needs a target like user@host"),
        ("ngrok", {"public_url": "https://x.example"}, "--tunnel-url is for ssh and none"),
        ("ssh", {"ssh_target": "h", "domain": "x.example"}, "--tunnel-domain is for ngrok"),
    ],
)
def test_settings_that_cannot_work(
    tmp_path: Path, provider: str, settings: dict[str, str], message: str
) -> None:
    with pytest.raises(TunnelUnavailable) as error:
        make_tunnel(provider, LOCAL, state_dir=tmp_path, **settings)
    assert message in str(error.value)
