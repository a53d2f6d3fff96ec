"""Who may use a node: one with a public URL requires an API key, unless it is explicitly left open.

A tunnel (or ``tunnel_url``) puts every route on the internet, model management included (pull,
create, delete, push). Such a node uses the configured ``api_key``; without one, ``avocado serve``
generates a key on first use and keeps it in ``state/api-key`` (``0600``), printing it once, when it
is made. Serving a public URL without a key takes ``public_without_key`` (``--public-without-key``);
an app asked to do it otherwise refuses to start (:func:`check_exposure`).
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from avocado.config import Settings
from avocado.secret_file import load_or_create_secret

__all__ = ["KEY_FILE", "OpenNodeRefused", "check_exposure", "ensure_api_key", "key_file", "key_report"]

KEY_FILE = "api-key"


class OpenNodeRefused(ValueError):
    """A public URL was asked for with no API key and without ``public_without_key``."""


def key_file(settings: Settings) -> Path:
    """Where a generated key is kept: ``state/api-key`` in the home."""
    return settings.state_dir / KEY_FILE


def ensure_api_key(settings: Settings) -> tuple[Settings, str | None]:
    """``settings`` with an API key wherever a public URL needs one, and what to tell the user (once).

    The key is the configured one, else the one kept in the home, made now if there is none (the only
    time it is shown). ``SecretFileError`` when the kept key cannot be used.
    """
    if settings.api_key is not None or not settings.has_public_url or settings.public_without_key:
        return settings, None
    path = key_file(settings)
    key, created = load_or_create_secret(path)
    keyed = settings.model_copy(update={"api_key": SecretStr(key)})
    if not created:
        return keyed, f"A public URL needs an API key: using the one kept in {path}"
    return keyed, (
        f"A public URL needs an API key; generated one (shown this once, kept in {path}):\n\n"
        f"    {key}\n\n"
        "Clients send it as 'Authorization: Bearer <key>' (avocado commands: AVOCADO_API_KEY=<key>)."
    )


def check_exposure(settings: Settings) -> None:
    """Refuse a public URL without an API key, unless the node is explicitly left open."""
    if settings.has_public_url and settings.api_key is None and not settings.public_without_key:
        raise OpenNodeRefused(
            "a node with a public URL (a tunnel, or tunnel_url) requires an API key: set one (--api-key, "
            "AVOCADO_API_KEY), let `avocado serve` generate one, or pass --public-without-key "
            "(AVOCADO_PUBLIC_WITHOUT_KEY=true) to let anyone who finds the URL use every route"
        )


def key_report(settings: Settings, key: str | None = None) -> dict[str, Any]:
    """Whether a key protects the node, and where it comes from; never the key itself.

    ``key`` is the key in use when it is no longer the configured one (it was rotated).
    """
    if settings.api_key is None:
        return {"required": False, "source": None, "open_by_choice": settings.public_without_key}
    current = key if key is not None else settings.api_key.get_secret_value()
    path = key_file(settings)
    try:
        kept = path.read_text().strip()
    except OSError:
        kept = ""
    generated = bool(kept) and hmac.compare_digest(kept.encode(), current.encode())
    return {
        "required": True,
        "source": "generated" if generated else "configured",
        "file": str(path) if generated else None,
    }
