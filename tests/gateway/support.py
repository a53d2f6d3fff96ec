"""Gateway test support: a gateway served by uvicorn in a thread, and a small stand-in node.

``start_gateway(pool)`` runs the real app over a :class:`NodePool` (as ``start_node`` runs a node);
``call`` runs a function on the gateway's event loop, which is where the pool and a discovery
registry live. The stand-in answers like a node with one model and can be told to fail, to break off
its streams, or to pace them, so failure handling is tested without waiting on inference.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from avocado.discovery import Announcement, ModelInfo, Registry
from avocado.gateway.app import create_gateway_app
from avocado.gateway.hooks import Outcome, Refused, Ticket
from avocado.gateway.nodes import NodePool
from avocado.gateway.proxy import Observer
from tests.support import RunningServer, serve

__all__ = [
    "Recorder",
    "RunningGateway",
    "RunningServer",
    "RunningStandIn",
    "ScriptedAdmission",
    "StandIn",
    "announcement",
    "apply",
    "self_signed",
    "serve",
    "start_gateway",
    "start_standin",
    "wait_until",
]

T = TypeVar("T")


class Recorder:
    """An outcome observer that keeps every outcome (thread-safe to read from the test)."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def find(self, request_id: str, timeout: float = 5.0) -> Outcome:
        """The outcome of ``request_id``, waiting for it (it is reported after the last byte)."""
        deadline = time.monotonic() + timeout
        while True:
            for outcome in list(self.outcomes):
                if outcome.request_id == request_id:
                    return outcome
            assert time.monotonic() < deadline, f"no outcome for {request_id}"
            time.sleep(0.02)


@dataclass
class RunningGateway:
    url: str
    app: FastAPI
    pool: NodePool
    running: RunningServer
    outcomes: Recorder

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the gateway's event loop and return its result."""
        assert self.pool.loop is not None

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.pool.loop).result(timeout=10)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def node_info(self, name: str) -> dict[str, Any]:
        listed = httpx.get(f"{self.url}/api/avocado/nodes", timeout=10).json()["nodes"]
        for entry in listed:
            if entry["name"] == name:
                return dict(entry)
        raise AssertionError(f"{name} is not listed: {listed}")

    def stop(self) -> None:
        self.running.stop()


def start_gateway(pool: NodePool, *, observers: Sequence[Observer] = (), **options: Any) -> RunningGateway:
    """The gateway app over ``pool`` (``options`` go to ``create_gateway_app``), served in a thread.

    Every outcome is recorded in ``outcomes``, besides going to ``observers``.
    """
    recorder = Recorder()
    app = create_gateway_app(pool, observers=[recorder, *observers], **options)
    running = serve(app)
    return RunningGateway(running.url, app, pool, running, recorder)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{message} not met within {timeout}s"
        time.sleep(0.02)


class ScriptedAdmission:
    """An admission the request steers: ``x-test-refuse: STATUS`` refuses (429 with a Retry-After),
    ``x-test-models: a,b`` admits for those models only. Keeps every finished (ticket, outcome)."""

    def __init__(self) -> None:
        self.admitted: list[str | None] = []
        self.finished: list[tuple[Ticket, Outcome]] = []

    async def admit(self, request: Request, model: str | None) -> Ticket:
        refuse = request.headers.get("x-test-refuse")
        if refuse:
            raise Refused(int(refuse), "refused by the test", retry_after=2.5 if refuse == "429" else None)
        self.admitted.append(model)
        models = request.headers.get("x-test-models")
        return Ticket(key_id="test", allowed_models=models.split(",") if models else None)

    async def finish(self, ticket: Ticket, outcome: Outcome) -> None:
        self.finished.append((ticket, outcome))

    def outcome(self, request_id: str, timeout: float = 5.0) -> Outcome:
        deadline = time.monotonic() + timeout
        while True:
            for _, outcome in list(self.finished):
                if outcome.request_id == request_id:
                    return outcome
            assert time.monotonic() < deadline, f"admission never finished {request_id}"
            time.sleep(0.02)


_T0 = datetime(2030, 1, 1, tzinfo=UTC)


def announcement(
    service_id: str,
    url: str,
    sequence: int,
    status: str = "online",
    models: Sequence[str] = (),
    ttl_seconds: int = 60,
) -> Announcement:
    """What a node would announce on the broker (no broker needed: tests apply it to a Registry)."""
    return Announcement.model_validate(
        {
            "service_id": service_id,
            "url": url,
            "status": status,
            "models": [ModelInfo(name=m, digest="sha256:" + "0" * 64, size=1) for m in models],
            "version": "0.1.0",
            "started_at": _T0,
            "timestamp": _T0,
            "sequence": sequence,
            "ttl_seconds": ttl_seconds,
        }
    )


def apply(gateway: RunningGateway, registry: Registry, item: Announcement) -> None:
    """Apply an announcement on the gateway's loop, as a watcher would."""
    gateway.call(lambda: registry.apply(item))


@dataclass
class StandIn:
    """A node stand-in: ``mode`` is ``ok``, ``fail`` (500 on model routes) or ``break`` (cut streams)."""

    model: str = "standin:1"
    mode: str = "ok"
    tags_status: int = 200
    lines: int = 3
    pause: float = 0.0  # seconds between streamed lines
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/ps", self._ps, methods=["GET"]),
                Route("/api/generate", self._generate, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    def model_hits(self) -> int:
        return sum(1 for path, _ in self.hits if path != "/api/tags")

    async def _tags(self, request: Request) -> Response:
        self.hits.append((request.url.path, dict(request.headers)))
        entry = {"name": self.model, "model": self.model, "modified_at": "2030-01-01T00:00:00+00:00"}
        return JSONResponse({"models": [entry]}, status_code=self.tags_status)

    async def _ps(self, request: Request) -> Response:
        return JSONResponse({"models": [{"name": self.model, "model": self.model, "size_vram": 0}]})

    async def _generate(self, request: Request) -> Response:
        self.hits.append((request.url.path, dict(request.headers)))
        body = await request.json()
        if self.mode == "fail":
            return JSONResponse({"error": "stand-in failure"}, status_code=500)
        if body.get("stream") is False:
            final = {"model": self.model, "response": "ok", "done": True, "prompt_eval_count": 7}
            return JSONResponse({**final, "eval_count": 3})
        return StreamingResponse(self._ndjson(), media_type="application/x-ndjson")

    async def _chat(self, request: Request) -> Response:
        self.hits.append((request.url.path, dict(request.headers)))
        if self.mode == "fail":
            error = {"message": "stand-in failure", "type": "server_error", "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=500)
        return StreamingResponse(self._sse(), media_type="text/event-stream")

    async def _ndjson(self) -> AsyncIterator[bytes]:
        for index in range(self.lines):
            yield (json.dumps({"model": self.model, "response": f"w{index} ", "done": False}) + "\n").encode()
            await self._pace(index)
        final = {"model": self.model, "response": "", "done": True, "prompt_eval_count": 5, "eval_count": 9}
        yield (json.dumps(final) + "\n").encode()

    async def _sse(self) -> AsyncIterator[bytes]:
        for index in range(self.lines):
            chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "w"}}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await self._pace(index)
        usage = {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode()

    async def _pace(self, index: int) -> None:
        if self.mode == "break" and index == 1:
            raise RuntimeError("stand-in breaks off its stream")
        if self.pause:
            await asyncio.sleep(self.pause)


@dataclass
class RunningStandIn:
    standin: StandIn
    running: RunningServer

    @property
    def url(self) -> str:
        return self.running.url

    def stop(self) -> None:
        self.running.stop()


def start_standin(tls: tuple[Path, Path] | None = None, **fields: Any) -> RunningStandIn:
    """A stand-in node (``fields`` set its behaviour); ``tls`` (certificate, key) serves it over https."""
    standin = StandIn(**fields)
    settings = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    return RunningStandIn(standin, serve(standin.app(), **settings))


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
