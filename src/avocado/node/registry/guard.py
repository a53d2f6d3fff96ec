"""Where a pull or push may connect to, checked on every connection the node makes for it.

A pull names a URL or a registry, and the registry names more (redirects to a CDN, a token service
in ``WWW-Authenticate``): any of them could point the node at an address only it can reach. So every
request of a transfer goes through :class:`GuardedTransport`, which resolves the host, checks the
address and connects to that very address (the name still goes in ``Host`` and, for https, in SNI
and the certificate check), so a DNS answer that changes between the check and the connection
(DNS rebinding) changes nothing. Redirects and token realms are requests like any other.

- Never: link-local addresses (169.254.0.0/16, fe80::/10), cloud metadata services (169.254.169.254,
  fd00:ec2::254, 100.100.100.200, 168.63.129.16, ``metadata.google.internal``, ...), multicast,
  reserved and unspecified addresses.
- Loopback and private networks (RFC 1918, ULA, CGNAT 100.64/10, ...): while the node has no public
  URL (node-to-node pulls on a LAN), or when ``pull_allow_networks`` lists them.
- Public addresses: always.

``pull_only_networks`` narrows all of that to the networks it lists: when set, a transfer connects to
an address in one of them or nowhere, public addresses included (``127.0.0.0/8,::1/128`` keeps every
pull and push of a sandbox, or of a fuzzing run, on the machine). Its names are still resolved
(a DNS query may leave the machine); no connection does.

Proxies from the environment are not used for transfers: the checks are of the connection the node
itself makes.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from avocado.config import Settings
from avocado.node.registry.errors import RegistryError

__all__ = ["ForbiddenAddress", "GuardedTransport", "PullPolicy", "TooLarge", "classify", "read_capped"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
Kind = Literal["forbidden", "local", "public"]

# Metadata services that no address class gives away (the others are link-local anyway).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS IMDS over IPv6 (a ULA address)
        "100.100.100.200",  # Alibaba Cloud (in CGNAT space)
        "168.63.129.16",  # Azure wire server (a public address)
    )
)
# "This network" (0.0.0.0/8 reaches the machine itself on Linux) and the reserved 240/4 with broadcast.
_NEVER = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("240.0.0.0/4"))
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


class ForbiddenAddress(RegistryError):
    """A transfer was about to connect where it must not."""


class TooLarge(RegistryError):
    """A download is larger than ``max_pull_size`` allows."""


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv6 one that carries it (mapped, 6to4, Teredo, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def classify(address: IPAddress) -> Kind:
    """``forbidden`` (never), ``local`` (loopback, private: by policy) or ``public`` (always)."""
    inner = _unwrapped(address)
    for candidate in {address, inner}:
        if candidate in METADATA_ADDRESSES or candidate.is_link_local or candidate.is_multicast:
            return "forbidden"
        if candidate.is_unspecified or any(candidate in network for network in _NEVER):
            return "forbidden"
    if address.is_global and inner.is_global:
        return "public"
    return "local"


def _networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).partition("%")[0] for info in infos]


@dataclass(frozen=True)
class PullPolicy:
    """What a node's transfers may reach, and how much they may download."""

    allow_local: bool = True
    networks: tuple[IPNetwork, ...] = ()
    max_size: int | None = None
    only: tuple[IPNetwork, ...] = ()  # when set, the only networks a transfer may reach

    @classmethod
    def from_settings(cls, settings: Settings) -> PullPolicy:
        return cls(
            allow_local=not settings.has_public_url,
            networks=_networks(settings.pull_allow_networks),
            max_size=settings.max_pull_size_bytes or None,  # 0: no cap
            only=_networks(settings.pull_only_networks),
        )

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why the transfer may not connect to ``address`` (for ``host``), or None when it may."""
        kind = classify(address)
        shown = host if host == str(address) else f"{host} ({address})"
        if kind == "forbidden":
            return f"{shown} is a link-local, cloud metadata or reserved address: transfers never reach it"
        if self.only:
            if any(address in network for network in self.only):
                return None
            listed = ", ".join(str(network) for network in self.only)
            return f"{shown} is outside pull_only_networks ({listed}), the only networks transfers reach"
        if kind == "public":
            return None
        if self.allow_local or any(address in network for network in self.networks):
            return None
        return (
            f"{shown} is on a loopback or private network and this node has a public URL: transfers reach "
            "such addresses only in the networks listed in pull_allow_networks (AVOCADO_PULL_ALLOW_NETWORKS)"
        )

    def address_for(self, host: str, port: int, resolve: Resolver = _resolve) -> str:
        """The address to connect to for ``host``: the first it resolves to that the policy allows
        (:class:`ForbiddenAddress` when there is none; ``OSError`` when the name does not resolve)."""
        name = host.rstrip(".").lower()
        if name in METADATA_NAMES:
            raise ForbiddenAddress(f"{name} is a cloud metadata service: transfers never reach it")
        try:
            candidates = [ipaddress.ip_address(name)]
        except ValueError:
            candidates = [ipaddress.ip_address(a) for a in resolve(name, port)]
        reasons = []
        for address in candidates:
            reason = self.refusal(name, address)
            if reason is None:
                return str(address)
            reasons.append(reason)
        raise ForbiddenAddress(reasons[0] if reasons else f"{name} resolves to no address")

    def check_size(self, size: int, what: str) -> None:
        """Refuse a download of ``size`` bytes past ``max_size``."""
        if self.max_size is not None and size > self.max_size:
            raise TooLarge(
                f"{what}: {size} bytes is more than max_pull_size allows ({self.max_size} bytes); "
                "raise max_pull_size (AVOCADO_MAX_PULL_SIZE) to pull it"
            )


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that connects only where ``policy`` allows, to the address it checked.

    Each request's host is resolved and checked, and the request goes to that address with the
    original name kept in ``Host`` and in TLS (SNI and the certificate's name). Connections are kept
    per original host, so a TLS connection made for one name never carries another's requests.
    """

    def __init__(self, policy: PullPolicy, resolve: Resolver | None = None) -> None:
        self.policy = policy
        self.resolve = resolve or _resolve
        self._transports: dict[tuple[str, str, int], httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address = self.policy.address_for(url.host, port, self.resolve)
        except (OSError, UnicodeError) as exc:  # the name does not resolve
            raise httpx.ConnectError(f"cannot resolve {url.host}: {exc}", request=request) from None
        extensions = dict(request.extensions)
        if url.scheme == "https" and address != url.host:
            extensions["sni_hostname"] = url.host  # the certificate is checked against the name too
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,  # Host: the name, as the URL was written
            stream=request.stream,
            extensions=extensions,
        )
        return self._transport(url.scheme, url.host, port).handle_request(pinned)

    def _transport(self, scheme: str, host: str, port: int) -> httpx.HTTPTransport:
        with self._lock:
            key = (scheme, host, port)
            if key not in self._transports:
                self._transports[key] = httpx.HTTPTransport()
            return self._transports[key]

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()


def read_capped(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    """Join ``chunks`` up to ``limit`` bytes; a longer body is a :class:`RegistryError`."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise RegistryError(f"{what}: the answer is larger than {limit} bytes")
    return bytes(body)
