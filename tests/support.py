"""Test support: constants, apps served by uvicorn in a thread on a free loopback port, a real node."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette

from avocado.config import Settings
from avocado.node.app import create_app
from avocado.node.service import NodeService
from avocado.serving.protocol import uvicorn_options

SMOLLM = "smollm2:135m"
GEMMA = "gemma3:270m"
GREEDY = {"temperature": 0, "seed": 42}


def wait_for_serve(process: subprocess.Popen[str], port: int, timeout: float) -> None:
    """Wait until an ``avocado serve`` process answers ``GET /``; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/").text == "Ollama is running":
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    app: Starlette, port: int | None = None, *, send_buffer: int | None = None, **settings: Any
) -> RunningServer:
    """Serve ``app`` with uvicorn in a background thread on loopback; wait until it listens.

    ``settings`` go to ``uvicorn.Config`` (``ssl_certfile`` and ``ssl_keyfile`` serve ``https``).
    ``send_buffer`` shrinks the kernel's send buffer of every connection (accepted sockets inherit
    it from the listening one), as a slow network would: a client that stops reading then stops
    the server's writes after kilobytes rather than megabytes.
    """
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, **settings)
    server = uvicorn.Server(config)
    run: Callable[[], None] = server.run
    if send_buffer is not None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        listener.bind(("127.0.0.1", port))
        run = functools.partial(server.run, sockets=[listener])
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    scheme = "https" if "ssl_certfile" in settings else "http"
    return RunningServer(f"{scheme}://127.0.0.1:{port}", server, thread)


@dataclass
class RunningNode:
    url: str
    app: FastAPI
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def service(self) -> NodeService:
        service: NodeService = self.app.state.service
        return service

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_node(home: Path, *, send_buffer: int | None = None, **overrides: Any) -> RunningNode:
    """Start a node in a background thread and wait until it answers (``send_buffer``: see :func:`serve`)."""
    settings = Settings(home=home, port=free_port(), num_ctx=2048, keep_alive="5m", **overrides)
    app = create_app(settings)
    options = {key: value for key, value in uvicorn_options(settings).items() if key == "http"}
    running = serve(app, settings.port, send_buffer=send_buffer, **options)  # as `avocado serve` runs it
    return RunningNode(running.url, app, settings, running.server, running.thread)


def linked_home(source: Path, target: Path) -> Path:
    """A home of its own (identity, outbox, lock) with ``source``'s models, hard-linked: no copying."""
    shutil.copytree(source / "models", target / "models", copy_function=os.link)
    (target / "state").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "state" / "bundled.json", target / "state" / "bundled.json")
    return target
