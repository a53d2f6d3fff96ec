"""A static node as the operator names it: ``URL[,api_key]`` (``--node``, ``AVOCADO_NODES``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from avocado.discovery import redact_url

__all__ = ["NodeSpec"]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A static node: its URL, the key it wants (never shown), and its share of the load."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    name: str | None = None
    weight: float = 1.0

    @classmethod
    def parse(cls, entry: str, weight: float = 1.0) -> NodeSpec:
        """``URL[,api_key]``, as in ``AVOCADO_NODES``."""
        url, _, key = entry.strip().partition(",")
        return cls(url=url.strip().rstrip("/"), api_key=key.strip() or None, weight=weight)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a node is URL[,api_key] with an http(s) URL, got {redact_url(self.url)!r}")
        if self.api_key is not None and (not self.api_key.isprintable() or " " in self.api_key):
            raise ValueError("a node's api key must be printable, without spaces")
        if self.weight <= 0:
            raise ValueError("a node's weight must be positive")
