"""``/health/live`` and ``/health/ready`` on the node and on the node in front of Ollama, without
a key; and routine traffic, health checks included, logged at debug rather than info."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.node.api.support import wait_until
from tests.node.proxy.test_proxy import start_proxy
from tests.support import SMOLLM, RunningNode, free_port, linked_home, start_node

KEY = "health-test-key-123"


@pytest.fixture(scope="module")
def keyed(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = start_node(linked_home(home, tmp_path_factory.mktemp("keyed")), api_key=KEY)
    yield running
    running.stop()


def test_live_and_ready_answer_without_a_key(keyed: RunningNode) -> None:
    with httpx.Client(base_url=keyed.url) as http:
        assert http.get("/api/tags").status_code == 401  # everything else still wants the key
        for path in ("/health/live", "/health/ready"):
            response = http.get(path)
            assert response.status_code == 200 and response.json() == {"status": "ok"}
            assert response.headers["cache-control"] == "no-store"
            assert http.head(path).status_code == 200
        refused = http.post("/health/ready")  # only GET and HEAD are served, with or without a key
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


def test_ready_says_why_not_while_the_store_cannot_be_read(keyed: RunningNode) -> None:
    manifests = keyed.settings.models_dir / "manifests"
    moved = manifests.with_name("manifests-away")
    shutil.move(manifests, moved)
    try:
        with httpx.Client(base_url=keyed.url) as http:
            response = http.get("/health/ready")
            assert response.status_code == 503 and "model store" in response.json()["reason"]
            assert http.get("/health/live").status_code == 200
    finally:
        shutil.move(moved, manifests)


def test_a_draining_node_is_live_but_not_ready(home: Path, tmp_path: Path) -> None:
    running = start_node(linked_home(home, tmp_path / "draining"))
    try:
        with running.client() as http:
            assert http.get("/health/ready").status_code == 200
            assert http.post("/api/avocado/drain").json()["status"] == "draining"
            response = http.get("/health/ready")
            assert response.status_code == 503 and response.json()["reason"] == "the node is draining"
            assert http.get("/health/live").status_code == 200
    finally:
        running.stop()


def test_in_front_of_ollama_ready_means_ollama_answers(node: RunningNode, tmp_path: Path) -> None:
    answering = start_proxy(tmp_path / "up", node.url, api_key=KEY)
    silent = start_proxy(tmp_path / "down", f"http://127.0.0.1:{free_port()}", api_key=KEY)
    try:
        assert httpx.get(f"{answering.url}/health/ready").status_code == 200
        assert httpx.get(f"{answering.url}/api/tags").status_code == 401
        response = httpx.get(f"{silent.url}/health/ready")
        assert response.status_code == 503 and "does not answer" in response.json()["reason"]
        assert httpx.get(f"{silent.url}/health/live").status_code == 200
    finally:
        answering.stop()
        silent.stop()


def test_routine_traffic_is_logged_at_debug(node: RunningNode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="avocado.request")
    routine = [("GET", "/"), ("HEAD", "/"), ("GET", "/api/tags"), ("GET", "/api/ps"), ("GET", "/api/version")]
    routine += [("GET", "/health/live"), ("GET", "/health/ready")]
    with node.client() as http:
        for method, path in routine:
            assert http.request(method, path).status_code == 200
        assert http.post("/api/show", json={"model": SMOLLM}).status_code == 200  # work: info
        assert http.get("/api/nothing-here").status_code == 404  # not routine: info

    def levels() -> dict[tuple[str, str], int]:
        return {
            (r.fields["method"], r.fields["path"]): r.levelno  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "avocado.request"
        }

    # A request's line is logged once its answer has gone: the last may still be on its way.
    wait_until(lambda: len(levels()) == len(routine) + 2, "every request's log line", timeout=10)
    logged = levels()
    assert {request: logged[request] for request in routine} == dict.fromkeys(routine, logging.DEBUG)
    assert logged[("POST", "/api/show")] == logged[("GET", "/api/nothing-here")] == logging.INFO
