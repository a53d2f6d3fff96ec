"""``--tunnel none``: no tunnel; the node is reached at its own URL (or at a URL given for it)."""

from __future__ import annotations

from avocado.tunnel.base import Tunnel

__all__ = ["LocalTunnel"]


class LocalTunnel(Tunnel):
    """The node's own URL, or ``public_url`` when something else (a reverse proxy) fronts it."""

    name = "none"

    def __init__(self, local_url: str, public_url: str | None = None) -> None:
        super().__init__(local_url)
        self.url = (public_url or local_url).rstrip("/")
        self._open = False

    async def open(self) -> str:
        self._open = True
        self.public_url = self.url
        return self.url

    async def close(self) -> None:
        self._open = False
        self.public_url = None

    def alive(self) -> bool:
        return self._open
