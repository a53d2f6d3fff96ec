"""HTTP headers that every Avocado proxy (the gateway, a node in front of Ollama) treats alike."""

from __future__ import annotations

__all__ = ["HOP_BY_HOP"]

# Headers that describe one connection, not the message: never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
