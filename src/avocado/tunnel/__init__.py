"""Reach the node from anywhere: ``avocado serve --tunnel none|ssh|cloudflared|ngrok``.

:func:`make_tunnel` builds a :class:`Tunnel` for a provider; :class:`TunnelSupervisor` keeps it up,
checks it end to end and reports each new public URL. Errors are in :mod:`avocado.tunnel.errors`.
"""

from avocado.redact import redact
from avocado.tunnel.base import Tunnel
from avocado.tunnel.cloudflared import CloudflaredTunnel
from avocado.tunnel.errors import TunnelError, TunnelStartError, TunnelTimeout, TunnelUnavailable
from avocado.tunnel.factory import PROVIDERS, make_tunnel
from avocado.tunnel.local import LocalTunnel
from avocado.tunnel.ngrok import NgrokTunnel
from avocado.tunnel.ssh import SshTunnel, find_public_url, parse_target
from avocado.tunnel.supervisor import TunnelState, TunnelStatus, TunnelSupervisor, UrlCallback

__all__ = [
    "PROVIDERS",
    "CloudflaredTunnel",
    "LocalTunnel",
    "NgrokTunnel",
    "SshTunnel",
    "Tunnel",
    "TunnelError",
    "TunnelStartError",
    "TunnelState",
    "TunnelStatus",
    "TunnelSupervisor",
    "TunnelTimeout",
    "TunnelUnavailable",
    "UrlCallback",
    "find_public_url",
    "make_tunnel",
    "parse_target",
    "redact",
]
