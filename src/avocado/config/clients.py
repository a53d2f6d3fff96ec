"""Where the client commands (``avocado run``, ``list``, ``keys``, ...) find a node and the gateway,
from the environment as Ollama's client reads ``OLLAMA_HOST``."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from avocado.config.node import DEFAULT_PORT

__all__ = ["client_base_url", "gateway_base_url"]


def gateway_base_url(env: dict[str, str] | None = None) -> str:
    """Where admin commands find the gateway: ``AVOCADO_GATEWAY_URL``, else where clients find a node
    (:func:`client_base_url`: 127.0.0.1:11434 by default, the gateway of ``avocado up``)."""
    env = dict(os.environ) if env is None else env
    given = env.get("AVOCADO_GATEWAY_URL", "").strip().rstrip("/")
    return given or client_base_url(env)


def client_base_url(env: dict[str, str] | None = None) -> str:
    """Where client commands find a node: ``AVOCADO_HOST``, then ``OLLAMA_HOST``, then the default.

    Accepts Ollama's forms: ``host``, ``host:port``, ``:port``, ``http(s)://host[:port]``.
    """
    env = dict(os.environ) if env is None else env
    raw = (env.get("AVOCADO_HOST") or env.get("OLLAMA_HOST") or "").strip().rstrip("/")
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    scheme = parts.scheme or "http"
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (
        443 if scheme == "https" and parts.netloc and ":" not in parts.netloc else DEFAULT_PORT
    )
    return f"{scheme}://{host}:{port}{parts.path}"
