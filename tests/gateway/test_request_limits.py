"""The gateway bounds what a client sends as a node does: body size, and how slowly it may come.

It is as public as a node, so a body past ``max_body`` is a ``413`` (model requests on their short
way in included) and a client that trickles its request in (slowloris) is cut off with ``408``
while others are served.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.support import Built, RunningStandIn, start_built, start_standin


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandIn]:
    running = start_standin()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(standin: RunningStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    home: Path = tmp_path_factory.mktemp("limited-gateway")
    built = start_built(home=home, nodes=[standin.url], max_body="1KiB", read_timeout="1s")
    yield built
    built.stop()


def connect(gateway: Built) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])), timeout=30)


def answer(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_a_body_past_max_body_is_413_on_every_way_in(gateway: Built, standin: RunningStandIn) -> None:
    model = standin.standin.model
    big = {"model": model, "prompt": "x" * 2000, "stream": False}
    with gateway.client() as http:
        direct = http.post("/api/generate", json=big)  # the short way in: no Origin
        assert direct.status_code == 413 and "request body too large" in direct.json()["error"]
        browser = http.post("/api/generate", json=big, headers={"Origin": "http://localhost:3000"})
        assert browser.status_code == 413  # the full stack
        chunked = http.post("/api/generate", content=iter([b'{"model": "', b"x" * 2000, b'"}']))
        assert chunked.status_code == 413  # no Content-Length: counted as it comes
        openai = http.post("/v1/chat/completions", json={"model": model, "messages": [], "x": "y" * 2000})
        assert openai.status_code == 413 and "too large" in openai.json()["error"]["message"]
        small = http.post("/api/generate", json={"model": model, "prompt": "Hi", "stream": False})
        assert small.status_code == 200
    assert standin.standin.model_hits() == 1  # nothing too large reached the node


def test_slow_clients_are_cut_off_and_do_not_hold_the_gateway(gateway: Built) -> None:
    def trickle() -> bytes:
        with connect(gateway) as client:
            client.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
            return answer(client)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        pending = [pool.submit(trickle) for _ in range(10)]
        with gateway.client(timeout=10) as http:
            assert http.get("/health/live").status_code == 200
        assert all(future.result().startswith(b"HTTP/1.1 408 ") for future in pending)
    assert time.monotonic() - started < 10


def test_a_body_sent_a_byte_at_a_time_is_408(gateway: Built, standin: RunningStandIn) -> None:
    head = b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\n{"
    with connect(gateway) as client:
        client.sendall(head)
        client.settimeout(0.3)
        started, reply = time.monotonic(), b""
        while not reply and time.monotonic() - started < 30:
            try:
                client.sendall(b" ")
                reply = client.recv(65536)
            except TimeoutError:
                continue
        client.settimeout(10)
        reply += answer(client)
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request body not received in time" in reply
    assert time.monotonic() - started < 10
