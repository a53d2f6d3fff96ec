"""Which browser pages may call Avocado: one CORS policy for the node, the Ollama proxy and the gateway.

By default the origins Ollama allows (``envconfig.AllowedOrigins``): pages on localhost, 127.0.0.1 and
0.0.0.0 on any port over http and https, and the desktop and editor shells that apps run in
(``app://``, ``file://``, ``tauri://``, ``vscode-webview://``, ``vscode-file://``); ``[::1]`` too.
``origins`` (``AVOCADO_ORIGINS``, like ``OLLAMA_ORIGINS``) adds more. Any method and header may be
used; the request id and the rate-limit headers can be read by the page.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

__all__ = ["EXPOSED_HEADERS", "LOCAL_ORIGINS", "add_cors", "cors_middleware"]

LOCAL_ORIGINS = (
    r"^(https?://(localhost|127\.0\.0\.1|\[::1\]|0\.0\.0\.0)(:\d+)?"
    r"|(app|file|tauri|vscode-webview|vscode-file)://.*)$"
)
# Response headers a page's script may read, besides the ones every browser shows it.
EXPOSED_HEADERS = (
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit-Requests",
    "X-RateLimit-Limit-Tokens",
    "X-RateLimit-Remaining-Requests",
    "X-RateLimit-Remaining-Tokens",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Reset-Tokens",
)


def cors_middleware(origins: Sequence[str] = ()) -> Middleware:
    """The CORS middleware every Avocado app uses, allowing ``origins`` besides the local ones."""
    return Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_origin_regex=LOCAL_ORIGINS,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=list(EXPOSED_HEADERS),
    )


def add_cors(app: Starlette, origins: Sequence[str] = ()) -> None:
    """Wrap ``app``'s routes in :func:`cors_middleware` (added now: it sits inside what comes later)."""
    middleware = cors_middleware(origins)
    app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
