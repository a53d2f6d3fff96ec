"""``/health/live`` and ``/health/ready``: open to all, ready only with a database and a node to route to."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from avocado.gateway.nodes import NodePool
from tests.db.support import postgres_database  # noqa: F401  (a fixture)
from tests.discovery.tcp_proxy import TcpProxy
from tests.gateway.support import ScriptedAdmission, start_built, start_gateway, start_standin, wait_until

T = TypeVar("T")
MASTER = "master-0123456789abcdef-health"


class LoopThread:
    """An event loop in a thread, for the TCP proxy that stands between the gateway and PostgreSQL."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.stop()


def test_live_and_ready_need_no_key_and_ready_follows_the_nodes() -> None:
    standin = start_standin()
    pool = NodePool([standin.url], health_interval=0.2, breaker_failures=100)
    gateway = start_gateway(pool, admission=ScriptedAdmission())
    headers = {"x-test-refuse": "401"}  # the admission refuses everything: health routes do not ask it
    try:
        with gateway.client(headers=headers) as http:
            assert http.get("/api/tags").status_code == 401
            live = http.get("/health/live")
            assert (live.status_code, live.json()) == (200, {"status": "alive"})
            ready = http.get("/health/ready")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready", "nodes": 1})
            assert ready.headers["cache-control"] == "no-store"

            standin.standin.tags_status = 500
            wait_until(lambda: http.get("/health/ready").status_code == 503, message="unready")
            assert http.get("/health/ready").json() == {
                "status": "unavailable",
                "reasons": ["nodes: none routable (1 unhealthy)"],
            }
            assert http.get("/health/live").status_code == 200
            standin.standin.tags_status = 200
            wait_until(lambda: http.get("/health/ready").status_code == 200, message="ready again")
    finally:
        gateway.stop()
        standin.stop()
    empty = start_gateway(NodePool())
    try:
        response = httpx.get(f"{empty.url}/health/ready")
        assert response.status_code == 503 and response.json()["reasons"] == ["nodes: none known"]
    finally:
        empty.stop()


def test_ready_is_503_while_the_database_is_away(
    postgres_database: str,  # noqa: F811  (the fixture imported above)
    loop: LoopThread,
    tmp_path: Path,
) -> None:
    database = urlsplit(postgres_database)
    proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
    loop.run(proxy.start())
    through_proxy = urlunsplit(database._replace(netloc=f"{database.username}@127.0.0.1:{proxy.port}"))
    standin = start_standin()
    gateway = start_built(home=tmp_path, nodes=[standin.url], master_key=MASTER, database_url=through_proxy)
    try:
        with gateway.client() as http:  # keys are required: the health routes still need none
            assert http.get("/api/tags").status_code == 401
            assert http.get("/health/ready").json() == {"status": "ready", "nodes": 1}
            loop.run(proxy.cut())
            unready = http.get("/health/ready")
            assert unready.status_code == 503
            assert unready.json()["reasons"] == ["database: unreachable (OperationalError)"]
            assert database.port is not None and str(proxy.port) not in unready.text  # no address shown
            assert http.get("/health/live").status_code == 200
            loop.run(proxy.restore())
            assert http.get("/health/ready").status_code == 200
    finally:
        gateway.stop()
        standin.stop()
        loop.run(proxy.close())
