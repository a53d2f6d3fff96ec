"""The one interface every tunnel provider implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from avocado.redact import redact

__all__ = ["Tunnel"]


class Tunnel(ABC):
    """A way to reach the node at ``local_url`` from elsewhere, at a public URL.

    A tunnel can be opened again after it was closed (or after it died): every ``open()`` starts
    afresh, and the public URL it returns may differ from the previous one.
    """

    name: ClassVar[str]

    def __init__(self, local_url: str) -> None:
        self.local_url = local_url.rstrip("/")
        self.public_url: str | None = None

    @abstractmethod
    async def open(self) -> str:
        """Bring the tunnel up and return its public URL; raises :class:`TunnelStartError`."""

    @abstractmethod
    async def close(self) -> None:
        """Take the tunnel down (its program stopped, its listener closed); safe to call twice."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether the tunnel opened last is still up as far as this process can tell."""

    def failure(self) -> str:
        """Why the tunnel is down, once :meth:`alive` says so (best read after :meth:`close`)."""
        return f"the {self.name} tunnel closed"

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs, errors or status (a token, say)."""
        return ()

    def redact(self, text: str) -> str:
        """``text`` fit for a log line or an error message."""
        return redact(text, self.secrets())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.redact(self.local_url)}>"
