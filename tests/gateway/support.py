"""Gateway test support: a gateway served by uvicorn in a thread, and a small stand-in node.

``start_gateway(pool)`` runs the real app over a :class:`NodePool` (as ``start_node`` runs a node);
``call`` runs a function on the gateway's event loop, which is where the pool and a discovery
registry live. ``start_built(settings)`` runs what ``avocado gateway`` runs (keys, limits, metrics).
The stand-in answers like a node with one model and can be told to fail, to be busy, to refuse, to
break off or stall its streams, to say nothing at all, or to pace its streams, so failure handling
is tested without waiting on inference.
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

from avocado.config import GatewaySettings
from avocado.discovery import Announcement, ModelInfo, Registry
from avocado.gateway.app import create_gateway_app
from avocado.gateway.build import build_gateway
from avocado.gateway.hooks import Outcome, Refused, Ticket
from avocado.gateway.nodes import NodePool
from avocado.gateway.proxy import Observer
from avocado.serving import uvicorn_options
from tests.support import RunningServer, serve

__all__ = [
    "Built",
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
    "start_built",
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
        return httpx.Client(base_url=self.url, **{"timeout": 120, **kwargs})

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


@dataclass
class Built:
    """A gateway made by ``build_gateway`` (as ``avocado gateway`` makes it), served in a thread."""

    url: str
    app: FastAPI
    running: RunningServer

    @property
    def pool(self) -> NodePool:
        pool: NodePool = self.app.state.pool
        return pool

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 120, **kwargs})

    def stop(self) -> None:
        self.running.stop()


def start_built(**settings: Any) -> Built:
    """``build_gateway`` over ``GatewaySettings(**settings)`` (give it a ``home``), served in a thread
    with the HTTP protocol ``avocado gateway`` runs (bounds on a request's head)."""
    built = GatewaySettings(**settings)
    app = build_gateway(built)
    running = serve(app, http=uvicorn_options(built)["http"])
    return Built(running.url, app, running)


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
    """A node stand-in. ``mode``, on model routes: ``ok``; ``fail`` (500); ``busy`` (503 with a
    Retry-After, as a node whose queue is full); ``reject`` (400, a client's mistake); ``unauthorized``
    (401, as a node that wants another key); ``break`` (cut streams); ``stall`` (a stream that stops
    after two lines, the connection kept open); ``hang`` (accepts and never answers). The last two
    hold on until the gateway closes the connection, and ``disconnects`` counts that.
    """

    model: str = "standin:1"
    mode: str = "ok"
    tags_status: int = 200
    lines: int = 3
    pause: float = 0.0  # seconds between streamed lines
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    disconnects: int = 0  # requests held by ``stall`` or ``hang`` that the gateway gave up on

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
        refused = await self._refusal(request, "stand-in")
        if refused is not None:
            return refused
        if body.get("stream") is False:
            final = {"model": self.model, "response": "ok", "done": True, "prompt_eval_count": 7}
            return JSONResponse({**final, "eval_count": 3})
        return StreamingResponse(self._ndjson(), media_type="application/x-ndjson")

    async def _chat(self, request: Request) -> Response:
        self.hits.append((request.url.path, dict(request.headers)))
        refused = await self._refusal(request, "openai")
        if refused is not None:
            return refused
        return StreamingResponse(self._sse(), media_type="text/event-stream")

    async def _refusal(self, request: Request, shape: str) -> Response | None:
        """The answer of a failing, busy, refusing or silent node (None: answer normally)."""
        statuses = {"fail": 500, "busy": 503, "reject": 400, "unauthorized": 401}
        if self.mode == "hang":
            await self._until_gone(request)
            return Response(status_code=500)  # never read: the gateway has left
        if self.mode not in statuses:
            return None
        message = "stand-in failure" if self.mode == "fail" else f"stand-in {self.mode}"
        if shape == "openai":
            error: object = {"message": message, "type": "server_error", "param": None, "code": None}
        else:
            error = message
        headers = {"Retry-After": "7"} if self.mode == "busy" else None
        return JSONResponse({"error": error}, status_code=statuses[self.mode], headers=headers)

    async def _until_gone(self, request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":  # the body was read: this waits
            pass
        self.disconnects += 1

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
        if self.mode == "stall" and index == 1:
            try:
                await asyncio.Event().wait()  # Starlette cancels the stream when the client leaves
            finally:
                self.disconnects += 1
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
