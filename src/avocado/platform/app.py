"""The platform's ASGI application: the domains' routers under ``/api/v1``, its OpenAPI, the web UI.

:func:`create_platform_app` composes what :func:`~avocado.platform.build.build_platform` made; each
domain contributes routers, and later ones (conversations, knowledge, tools, catalog, admin) are
added to :data:`ROUTERS`. The OpenAPI document is at ``/api/v1/openapi.json``, its pages at
``/api/v1/docs``. When a built web UI is there (``web_dir``), it is served at ``/`` with its
``index.html`` for every path the API does not own (the UI routes in the browser).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

import avocado
from avocado.cors import add_cors
from avocado.platform.accounts.oidc_router import oidc_router
from avocado.platform.accounts.router import admin_users_router, auth_router, users_router
from avocado.platform.admin.router import admin_router
from avocado.platform.catalog.router import catalog_router
from avocado.platform.compat.errors import install_openai_errors
from avocado.platform.compat.router import compat_router
from avocado.platform.conversations.router import conversations_router, folders_router
from avocado.platform.conversations.temporary import temporary_router
from avocado.platform.conversations.transfer_router import transfer_router
from avocado.platform.errors import install_error_handlers
from avocado.platform.feedback.router import admin_feedback_router, feedback_router
from avocado.platform.management.router import management_router
from avocado.platform.notes.router import notes_router
from avocado.platform.search.router import search_router
from avocado.platform.sharing.router import sharing_router
from avocado.platform.state import Platform
from avocado.request_id import RequestIdMiddleware
from avocado.serving import RequestLimitsMiddleware, limits_of

__all__ = ["API_PREFIX", "ROUTERS", "create_platform_app", "default_web_dir"]

API_PREFIX = "/api/v1"
ROUTERS: tuple[APIRouter, ...] = (
    auth_router,
    oidc_router,
    users_router,
    admin_users_router,
    admin_router,
    management_router,
    catalog_router,
    compat_router,
    transfer_router,  # before conversations_router: /export is not a conversation id
    conversations_router,
    folders_router,
    temporary_router,
    search_router,
    notes_router,
    feedback_router,
    admin_feedback_router,
    sharing_router,
)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def default_web_dir() -> Path | None:
    """The web UI built by the install script, when it was (``web/build`` beside the sources)."""
    candidate = Path(__file__).resolve().parents[3] / "web" / "build"
    return candidate if (candidate / "index.html").is_file() else None


class _SinglePage(StaticFiles):
    """Static files; an unknown path that is not the API's gets ``index.html`` (client-side routes)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or scope["path"].startswith("/api/"):
                raise
            return FileResponse(Path(str(self.directory)) / "index.html")


def create_platform_app(platform: Platform, lifespan: Lifespan | None = None) -> FastAPI:
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = FastAPI(
        title="Avocado platform",
        version=avocado.__version__,
        description='Accounts, sessions and models for people; errors are always {"detail": ...}.',
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=run,
    )
    app.state.platform = platform
    install_error_handlers(app)
    install_openai_errors(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    web_dir = platform.settings.web_dir or default_web_dir()
    if web_dir is not None and (web_dir / "index.html").is_file():
        app.mount("/", _SinglePage(directory=web_dir, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        async def root(request: Request) -> dict[str, str]:
            return {"detail": "the web UI is not built here; the API is at /api/v1 (docs: /api/v1/docs)"}

    add_cors(app, platform.settings.origins)
    limits = limits_of(platform.settings)
    app.add_middleware(RequestLimitsMiddleware, error_key="detail", **limits)
    app.add_middleware(RequestIdMiddleware)
    return app
