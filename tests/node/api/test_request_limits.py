"""Requests are bounded in size and in the time they may take to arrive; uploads in size and age.

A node once read any body whole, kept upload sessions and their data until another upload began,
and let a client hold a connection open by sending its request a byte at a time (slowloris).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from avocado.serving.protocol import MAX_HEAD
from tests.node.api.support import assert_error, wait_until
from tests.node.proxy.test_proxy import start_proxy
from tests.support import SMOLLM, RunningNode, linked_home, start_node


@pytest.fixture(scope="module")
def limited(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    own = linked_home(home, tmp_path_factory.mktemp("limited"))  # its own blobs directory to watch
    running = start_node(own, max_body="1KiB", max_upload="4KiB", upload_expiry="1s", read_timeout="1s")
    yield running
    running.stop()


def uploads_in(node: RunningNode) -> list[Path]:
    return list((node.settings.models_dir / "blobs").glob(".upload-*"))


def test_a_body_past_max_body_is_413(limited: RunningNode) -> None:
    body = {"model": SMOLLM, "prompt": "x" * 2000, "stream": False}
    with limited.client() as http:
        response = http.post("/api/generate", json=body)
        assert_error(response, 413, "request body too large: at most 1.0 KiB")
        assert response.headers["connection"] == "close"
        chunked = http.post("/api/generate", content=iter([b'{"model": "', b"x" * 2000, b'"}']))
        assert_error(chunked, 413, "request body too large")  # no Content-Length: counted as it comes
        openai = http.post("/v1/chat/completions", json={"model": SMOLLM, "messages": [], "x": "y" * 2000})
        assert openai.status_code == 413 and "too large" in openai.json()["error"]["message"]
        small = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
        assert http.post("/api/generate", json=small).json()["done"] is True


def test_a_blob_upload_past_max_upload_is_413_and_leaves_nothing(limited: RunningNode) -> None:
    data = os.urandom(8192)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with limited.client() as http:
        assert_error(http.post(f"/api/blobs/{digest}", content=data), 413, "at most 4.0 KiB")
        streamed = http.post(f"/api/blobs/{digest}", content=iter([data[:3000], data[3000:]]))
        assert_error(streamed, 413, "at most 4.0 KiB")
        assert http.head(f"/api/blobs/{digest}").status_code == 404
    assert uploads_in(limited) == []


def test_an_upload_session_past_max_upload_is_413(limited: RunningNode) -> None:
    with limited.client() as http:
        location = http.post("/v2/library/tiny/blobs/uploads/").headers["location"]
        assert http.patch(location, content=os.urandom(3000)).status_code == 202
        too_much = http.patch(location, content=os.urandom(3000))  # 6000 bytes in all
        assert too_much.status_code == 413 and too_much.json()["errors"][0]["code"] == "SIZE_INVALID"
        assert http.patch(location, content=b"x").status_code == 404  # the session is gone
    assert uploads_in(limited) == []


def test_abandoned_uploads_expire_with_their_data(limited: RunningNode) -> None:
    blobs = limited.settings.models_dir / "blobs"
    leftover = blobs / ".upload-from-a-crash"
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    with limited.client() as http:
        location = http.post("/v2/library/tiny/blobs/uploads/").headers["location"]
        assert http.patch(location, content=b"half a blob").status_code == 202
        # No count of the files here: with a 1 s expiry, a busy machine's sweep may already have run.
        wait_until(lambda: uploads_in(limited) == [], "the sweep of abandoned uploads", timeout=30)
        assert not leftover.exists()
        assert http.patch(location, content=b"more").json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def connect(node: RunningNode) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(node.url.rsplit(":", 1)[1])), timeout=30)


def answer(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_a_connection_that_sends_nothing_is_closed(limited: RunningNode) -> None:
    with connect(limited) as client:
        started = time.monotonic()
        reply = answer(client)
    assert reply.startswith(b"HTTP/1.1 408 ") and b"not received within 1s" in reply
    assert time.monotonic() - started < 10


def test_headers_sent_a_byte_at_a_time_are_cut_off(limited: RunningNode) -> None:
    request = b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    with connect(limited) as client:
        client.settimeout(0.1)
        started = time.monotonic()
        for byte in request:  # at most ten bytes a second: this head would take a quarter of an hour
            try:
                client.sendall(bytes([byte]))
                client.recv(1, socket.MSG_PEEK)  # an answer, or the end of the connection
                break
            except TimeoutError:
                continue
            except OSError:
                break
        client.settimeout(10)
        reply = answer(client)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 10


def test_a_body_sent_a_byte_at_a_time_is_408(limited: RunningNode) -> None:
    with connect(limited) as client:
        client.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\n{")
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


def test_an_oversized_head_is_431(limited: RunningNode) -> None:
    with connect(limited) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n")
        reply = answer(client)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_slow_clients_do_not_hold_the_node(limited: RunningNode) -> None:
    """Twenty connections that trickle their heads in: others are answered meanwhile, and the
    trickling ones are all closed."""

    def trickle() -> bytes:
        with connect(limited) as client:
            client.sendall(b"GET / HTTP/1.1\r\n")
            return answer(client)

    with ThreadPoolExecutor(max_workers=20) as pool:
        pending = [pool.submit(trickle) for _ in range(20)]
        with httpx.Client(base_url=limited.url, timeout=10) as http:
            assert http.get("/api/version").status_code == 200
        assert all(future.result().startswith(b"HTTP/1.1 408 ") for future in pending)


def test_in_front_of_ollama_bodies_are_bounded_too(node: RunningNode, tmp_path: Path) -> None:
    proxy = start_proxy(tmp_path, node.url, max_body="1KiB")
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as http:
            body = {"model": SMOLLM, "prompt": "x" * 2000}
            assert_error(http.post("/api/generate", json=body), 413, "request body too large")
            chunked = http.post("/api/generate", content=iter([b'{"model": "', b"x" * 2000, b'"}']))
            assert_error(chunked, 413, "request body too large")  # refused while it was forwarded
            small = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
            assert http.post("/api/generate", json=small).json()["done"] is True
    finally:
        proxy.stop()
