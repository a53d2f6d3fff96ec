"""Who a request comes from: the peer address, or what trusted proxies say it is.

``X-Forwarded-For`` is believed only from ``trusted_proxies``: read right to left, the first
address that is not a trusted proxy is the client (a client can put anything at the left end, so
the left end is never taken on trust). ``X-Forwarded-Proto`` likewise, for ``Secure`` cookies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

__all__ = ["ProxyTrust"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyTrust:
    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_address(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if not self.trusts(peer):
            return peer
        # Every X-Forwarded-For line: a proxy may add its own line rather than extend the first.
        lines = ",".join(request.headers.getlist("x-forwarded-for"))
        hops = [hop.strip() for hop in lines.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:  # not an address: written by the client, so stop at the last proxy
                return client
            if not self.trusts(client):
                return client
        return client

    def scheme(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https") and self.trusts(peer):
            return forwarded
        return request.url.scheme
