"""``make_tunnel``: a provider's name and the node's settings in, a :class:`Tunnel` out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avocado.tunnel.base import Tunnel
from avocado.tunnel.cloudflared import CloudflaredTunnel
from avocado.tunnel.errors import TunnelUnavailable
from avocado.tunnel.local import LocalTunnel
from avocado.tunnel.ngrok import NgrokTunnel
from avocado.tunnel.ssh import SshTunnel

__all__ = ["PROVIDERS", "make_tunnel"]

PROVIDERS = ("none", "ssh", "cloudflared", "ngrok")


def make_tunnel(
    provider: str,
    local_url: str,
    *,
    state_dir: Path,
    log_path: Path | None = None,
    public_url: str | None = None,
    domain: str | None = None,
    ssh_target: str | None = None,
    ssh_identity: Path | None = None,
    ssh_options: Sequence[str] = (),
    ssh_remote_port: int | None = None,
    ngrok_authtoken: str | None = None,
    open_timeout: float = 30.0,
) -> Tunnel:
    """The tunnel ``--tunnel PROVIDER`` asks for; raises :class:`TunnelUnavailable` when it cannot run.

    ``state_dir`` holds what a tunnel keeps between runs (ssh's ``known_hosts``); ``log_path``
    receives the tunnel program's output. ``public_url`` is for ``ssh`` and ``none``, ``domain`` for
    ``ngrok``; the ``ssh_*`` settings are ignored by the other providers.
    """
    name = provider.strip().lower()
    if name not in PROVIDERS:
        raise TunnelUnavailable(f"unknown tunnel provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    if public_url and name not in ("ssh", "none"):
        raise TunnelUnavailable(f"--tunnel {name} picks its own URL; --tunnel-url is for ssh and none")
    if domain and name != "ngrok":
        raise TunnelUnavailable(f"--tunnel-domain is for ngrok; with {name}, give the URL with --tunnel-url")
    if name == "none":
        return LocalTunnel(local_url, public_url)
    if name == "ssh":
        if not ssh_target:
            raise TunnelUnavailable("--tunnel ssh needs a target: user@host[:port] of an SSH server")
        return SshTunnel(
            local_url,
            ssh_target,
            state_dir=state_dir,
            identity_file=ssh_identity,
            options=ssh_options,
            remote_port=ssh_remote_port,
            public_url=public_url,
            log_path=log_path,
            open_timeout=open_timeout,
        )
    if name == "cloudflared":
        return CloudflaredTunnel(local_url, log_path=log_path, open_timeout=open_timeout)
    return NgrokTunnel(
        local_url, authtoken=ngrok_authtoken, domain=domain, log_path=log_path, open_timeout=open_timeout
    )
