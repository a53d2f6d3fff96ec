"""A real platform for tests: ``build_platform`` served by uvicorn on loopback, on SQLite or PostgreSQL.

Password hashing runs at light argon2 costs (``FAST_ARGON2``) so tests stay fast; the benchmark
and production use OWASP's. Each test gets its own home and an empty database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from avocado.platform.build import build_platform
from avocado.platform.settings import PlatformSettings
from avocado.platform.state import Platform
from tests.support import RunningServer, serve

__all__ = ["FAST_ARGON2", "PASSWORD", "RunningPlatform", "Session", "platform_settings", "start_platform"]

FAST_ARGON2: dict[str, Any] = {"argon2_memory": 64, "argon2_time": 1, "argon2_parallelism": 1}
PASSWORD = "correct horse battery"


def platform_settings(home: Path, database_url: str, **overrides: Any) -> PlatformSettings:
    values: dict[str, Any] = {"home": home, "database_url": database_url, **FAST_ARGON2, **overrides}
    return PlatformSettings(**values)


@dataclass
class RunningPlatform:
    url: str
    settings: PlatformSettings
    server: RunningServer
    platform: Platform

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.stop()

    # -- helpers the tests share --------------------------------------------------------------------

    def register(self, email: str, name: str = "Someone", password: str = PASSWORD) -> dict[str, Any]:
        with self.client() as http:
            response = http.post(
                "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
            )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def sign_in(self, email: str, password: str = PASSWORD, **headers: str) -> Session:
        http = self.client(headers=headers)
        response = http.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return Session(http, response.json())


@dataclass
class Session:
    """A signed-in API client: its tokens, and an httpx client that sends the access token."""

    http: httpx.Client
    tokens: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers=self.auth, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers=self.auth, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.patch(path, headers=self.auth, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, headers=self.auth, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any method, with a body if need be (httpx's ``delete`` takes none)."""
        return self.http.request(method, path, headers=self.auth, **kwargs)


def start_platform(settings: PlatformSettings) -> RunningPlatform:
    app = build_platform(settings)
    server = serve(app, proxy_headers=False)  # as serve_platform runs it: ProxyTrust alone judges proxies
    return RunningPlatform(server.url, settings, server, app.state.platform)


def running(settings: PlatformSettings) -> Iterator[RunningPlatform]:
    started = start_platform(settings)
    try:
        yield started
    finally:
        started.stop()
