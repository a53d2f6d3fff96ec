"""Pulling from a registry that asks for a bearer token first, as OCI registries do (ghcr.io, Docker Hub).

The registry here is a real node's ``/v2`` behind a guard that answers 401 with a ``Bearer`` challenge
until a request carries the token its token service hands out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import ollama
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from avocado.node.registry.auth import parse_bearer_challenge
from tests.node.registry.test_registry import FINAL, empty_node, model_names
from tests.support import SMOLLM, RunningNode, RunningServer, free_port, serve

TOKEN = "t0ken-for-smollm2"
SERVICE = "test-registry"


@dataclass
class Guard:
    """What the guarded registry saw."""

    upstream: str
    port: int
    grant: bool = True
    token_requests: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


def guarded_registry(guard: Guard) -> Starlette:
    realm = f"http://127.0.0.1:{guard.port}/token"
    client = httpx.AsyncClient(base_url=guard.upstream)

    async def token(request: Request) -> Response:
        guard.token_requests.append(dict(request.query_params))
        if not guard.grant:
            return JSONResponse({"errors": [{"code": "DENIED", "message": "no tokens today"}]}, 403)
        return JSONResponse({"token": TOKEN, "expires_in": 300})

    async def registry(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            guard.statuses.append(401)
            scope = "repository:" + request.url.path.split("/")[2] + "/" + request.url.path.split("/")[3]
            challenge = f'Bearer realm="{realm}",service="{SERVICE}",scope="{scope}:pull"'
            return JSONResponse(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                401,
                headers={"WWW-Authenticate": challenge},
            )
        names = ("accept", "range", "content-type", "content-length")
        headers = {k: v for k, v in request.headers.items() if k in names}
        body = request.stream() if request.method in ("POST", "PUT", "PATCH") else None
        forwarded = client.build_request(
            request.method, request.url.path, params=request.query_params, headers=headers, content=body
        )
        upstream = await client.send(forwarded, stream=True)
        guard.statuses.append(upstream.status_code)
        passed = {k: v for k, v in upstream.headers.items() if k not in ("transfer-encoding", "connection")}
        return StreamingResponse(
            upstream.aiter_raw(), upstream.status_code, passed, background=BackgroundTask(upstream.aclose)
        )

    return Starlette(
        routes=[
            Route("/token", token),
            Route("/v2/{path:path}", registry, methods=["GET", "HEAD", "POST", "PUT", "PATCH"]),
        ]
    )


@contextmanager
def guarding(upstream: RunningNode) -> Iterator[Guard]:
    guard = Guard(upstream=upstream.url, port=free_port())
    server: RunningServer = serve(guarded_registry(guard), guard.port)
    try:
        yield guard
    finally:
        server.stop()


@pytest.fixture
def guard(node: RunningNode) -> Iterator[Guard]:
    with guarding(node) as running:
        yield running


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningNode]:
    running = empty_node(tmp_path / "target")
    yield running
    running.stop()


def test_bearer_challenge_is_parsed() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'
    )
    assert parse_bearer_challenge(header) == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }
    assert parse_bearer_challenge('Basic realm="x"') is None
    assert parse_bearer_challenge("Bearer service=x") is None  # no realm: nowhere to ask


def test_pull_fetches_a_token_once_and_uses_it(guard: Guard, target: RunningNode) -> None:
    name = f"127.0.0.1:{guard.port}/library/{SMOLLM}"
    updates = list(ollama.Client(host=target.url).pull(name, insecure=True, stream=True))
    assert [u.status for u in updates][-3:] == FINAL
    assert name in model_names(target)
    assert guard.token_requests == [{"service": SERVICE, "scope": "repository:library/smollm2:pull"}]
    assert guard.statuses[0] == 401 and 401 not in guard.statuses[1:]  # one challenge, then the token


def test_a_refused_token_is_a_clear_error(guard: Guard, target: RunningNode) -> None:
    guard.grant = False
    name = f"127.0.0.1:{guard.port}/library/{SMOLLM}"
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=target.url).pull(name, insecure=True)
    assert err.value.status_code == 400
    assert "token service" in err.value.error and "no tokens today" in err.value.error
    assert not target.service.store.list()


def test_push_fetches_a_token_and_streams_the_blobs(node: RunningNode, target: RunningNode) -> None:
    with guarding(target) as guard:
        name = f"127.0.0.1:{guard.port}/library/smollm2:pushed"
        client = ollama.Client(host=node.url)
        client.copy(SMOLLM, name)
        try:
            updates = list(client.push(name, insecure=True, stream=True))
        finally:
            client.delete(name)
    assert [u.status for u in updates][-2:] == ["pushing manifest", "success"]
    assert "smollm2:pushed" in model_names(target)
    assert len(guard.token_requests) == 1
    assert guard.statuses[0] == 401 and 401 not in guard.statuses[1:]  # the uploads carried the token
