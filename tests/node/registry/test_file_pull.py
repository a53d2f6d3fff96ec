"""Pulling a single GGUF file by URL: naming, resume, the GGUF check, the chat template (paths on the
node's disk are refused: tests/node/registry/test_pull_safety.py)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import SMOLLM, RunningNode, start_node


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "target-home", register_bundled_models=False)
    yield running
    running.stop()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain static file server (no Range support) on loopback, serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def pull(node: RunningNode, source: str) -> tuple[int, list[dict[str, Any]]]:
    with node.client() as http, http.stream("POST", "/api/pull", json={"model": source}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response.status_code, lines


def test_pull_by_url_names_the_model_after_the_file_and_uses_its_chat_template(
    node: RunningNode, target: RunningNode, file_server: tuple[str, Path]
) -> None:
    url, root = file_server
    os.link(node.service.store.resolve(SMOLLM).model_path, root / "Tiny-Chat.Q4_1.gguf")
    status, lines = pull(target, f"{url}/Tiny-Chat.Q4_1.gguf")
    assert status == 200 and lines[-1] == {"status": "success"}, lines
    assert any(line.get("status") == "pulling Tiny-Chat.Q4_1.gguf" for line in lines)
    model = target.service.store.resolve("tiny-chat.q4_1:latest")
    assert model.template is None and model.info.chat_template  # the GGUF's own template is used
    with target.client() as http:
        body = {"model": "tiny-chat.q4_1", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
        reply = http.post("/api/chat", json={**body, "options": {"num_predict": 4, "temperature": 0}}).json()
    assert reply["done"] and reply["message"]["content"]
    assert not [p for p in target.service.store.blobs_dir.iterdir() if p.name.startswith("url-")]


def test_pull_by_url_resumes_a_partial_download(node: RunningNode, target: RunningNode) -> None:
    weights = node.service.store.resolve(SMOLLM).model_path
    digest = "sha256:" + weights.name.removeprefix("sha256-")
    url = f"{node.url}/v2/library/smollm2/blobs/{digest}"  # our registry serves Range requests
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    half = weights.stat().st_size // 2
    with weights.open("rb") as source:
        (target.service.store.blobs_dir / f"url-{key}-partial").write_bytes(source.read(half))
    status, lines = pull(target, url)
    assert status == 200 and lines[-1] == {"status": "success"}, lines
    first = next(line for line in lines if "completed" in line)
    assert first["completed"] > half  # it went on from the saved half rather than from zero
    assert target.service.store.has_blob(digest)


def test_pull_of_a_file_that_is_not_gguf_or_is_missing(
    target: RunningNode, file_server: tuple[str, Path]
) -> None:
    url, root = file_server
    (root / "notes.gguf").write_text("not a model at all")
    status, lines = pull(target, f"{url}/notes.gguf")
    assert "not a GGUF file" in lines[-1]["error"]
    assert not target.service.store.exists("notes:latest")
    assert not [p for p in target.service.store.blobs_dir.iterdir() if p.name.startswith("url-")]
    status, lines = pull(target, f"{url}/missing.gguf")
    assert status == 400 or "error" in lines[-1]


@pytest.mark.parametrize("source", ["https://8:m0", "http://[::1/x.gguf", "http://a\x18b/x.gguf"])
def test_a_url_that_cannot_be_a_url_is_400(target: RunningNode, source: str) -> None:
    """Found by bench/fuzz.py: httpx refused to build the request (its InvalidURL is no HTTPError), and the
    pull answered 500."""
    status, lines = pull(target, source)
    assert status == 400 and "is not a URL that can be reached" in lines[-1]["error"], (status, lines)
