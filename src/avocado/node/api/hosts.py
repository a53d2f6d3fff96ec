"""Host header checks against DNS rebinding, as Ollama does them (``allowedHostsMiddleware``).

A page on ``evil.example`` whose name is made to resolve to 127.0.0.1 can make a browser send requests
to a node on loopback: they arrive with ``Host: evil.example``. A node bound to loopback therefore
answers only requests whose Host is one of its own names: ``localhost`` and ``*.localhost``,
``*.local`` and ``*.internal``, the machine's host name, an IP address that is not a public one
(loopback, private, link-local, unspecified), the address it is bound to, the host of its public URL
(a tunnel's, or ``tunnel_url``), and the names in ``allowed_hosts`` (``.example.com`` for a domain and
its subdomains, ``*`` for any). Others get ``403``. A node bound beyond loopback (``0.0.0.0``, a LAN
address) is reached by whatever names its network gives it, so it takes any Host, as Ollama does.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from avocado.api_errors import error_bytes
from avocado.config import Settings

__all__ = ["HostCheckMiddleware", "HostPolicy", "host_of"]

# Ollama's local top-level names.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def host_of(value: str) -> str | None:
    """The name in a Host header (no port, no brackets, lower case, no final dot); None if unreadable."""
    try:
        name = urlsplit(f"//{value.strip()}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _not_public(name: str) -> bool:
    """An IP address that no other network can route to this machine by (a DNS name cannot rebind it)."""
    try:
        return not ipaddress.ip_address(name).is_global
    except ValueError:
        return False


class HostPolicy:
    """Which Host headers a node answers; ``public_url`` tells its current public URL (it may change)."""

    def __init__(self, bind: str, allowed: Iterable[str], public_url: Callable[[], str | None]) -> None:
        entries = [entry.strip().lower().rstrip(".") for entry in allowed if entry.strip()]
        self.any_host = not _is_loopback(bind) or "*" in entries
        self.names = {entry for entry in entries if not entry.startswith(".")}
        self.names |= {bind.strip("[]").lower(), "localhost", socket.gethostname().lower()}
        self.domains = tuple(entry for entry in entries if entry.startswith("."))
        self.public_url = public_url

    @classmethod
    def for_node(cls, settings: Settings, public_url: Callable[[], str | None]) -> HostPolicy:
        given = [urlsplit(settings.tunnel_url).hostname or ""] if settings.tunnel_url else []
        return cls(settings.host, [*settings.allowed_hosts, *given], public_url)

    def allows(self, host: str) -> bool:
        """Whether a request with ``Host: host`` (port and all) may reach the node."""
        if self.any_host:
            return True
        name = host_of(host)
        if name is None:
            return False
        if name in self.names or _not_public(name) or name.endswith(_LOCAL_SUFFIXES):
            return True
        if any(name == domain[1:] or name.endswith(domain) for domain in self.domains):
            return True
        public = self.public_url()
        return public is not None and name == host_of(urlsplit(public).netloc.rpartition("@")[2])


class HostCheckMiddleware:
    """Answers ``403`` to requests whose Host the :class:`HostPolicy` refuses (a missing Host passes:
    HTTP/1.0 clients send none, and a rebinding browser always sends one)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.policy.any_host:
            await self.app(scope, receive, send)
            return
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        text = host.decode("latin-1") if host is not None else None
        if text is None or self.policy.allows(text):
            await self.app(scope, receive, send)
            return
        message = (
            f"host {text[:100]!r} is not allowed: this node answers to localhost, its own addresses "
            "and its public URL; add the name to allowed_hosts (AVOCADO_ALLOWED_HOSTS) to reach it by it"
        )
        body = error_bytes(scope["path"], 403, message)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
