"""Rotating a running node's API key: POST /api/avocado/credentials and ``avocado credentials``.

Requests in flight and new ones keep succeeding across a rotation (the replaced key during its
overlap, the new key at once); after the overlap the replaced key is refused. A key the node keeps
in its home is replaced there too.
"""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from avocado.cli import app as cli
from avocado.config import Settings
from avocado.node.access import KEY_FILE
from avocado.node.credentials import ApiKeys
from avocado.node.proxy import create_proxy_app
from tests.support import SMOLLM, RunningNode, free_port, linked_home, serve, start_node

OLD = "old-key-" + "a" * 24
NEW = "new-key-" + "b" * 24
NEWER = "newer-key-" + "c" * 24
LAST = "last-key-" + "d" * 24


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_new_key_works_at_once_and_the_replaced_ones_until_their_overlap_ends() -> None:
    clock = Clock()
    keys = ApiKeys(OLD, clock=clock)
    assert keys.accepts(OLD.encode()) and not keys.accepts(NEW.encode()) and not keys.accepts(b"")
    keys.replace(NEW, overlap=600)
    assert keys.current == NEW and keys.accepts(NEW.encode()) and keys.accepts(OLD.encode())
    clock.now += 599
    assert keys.accepts(OLD.encode())
    clock.now += 1
    assert not keys.accepts(OLD.encode()) and keys.accepts(NEW.encode())

    keys.replace(NEWER, overlap=600)
    keys.replace(LAST, overlap=60)  # a shorter overlap shortens every earlier one
    clock.now += 59
    assert all(keys.accepts(k.encode()) for k in (NEW, NEWER, LAST))
    clock.now += 1
    assert [keys.accepts(k.encode()) for k in (NEW, NEWER, LAST)] == [False, False, True]
    keys.replace(OLD, overlap=0)  # no overlap: the replaced key is refused at once
    assert not keys.accepts(LAST.encode()) and keys.accepts(OLD.encode())
    with pytest.raises(ValueError):
        keys.replace(NEW, overlap=-1)


@pytest.fixture
def keyed(home: Path, tmp_path: Path) -> tuple[RunningNode, Path]:
    """A node whose key is the one kept in its home (as a generated key is)."""
    node_home = linked_home(home, tmp_path / "home")
    stored = node_home / "state" / KEY_FILE
    stored.write_text(OLD + "\n")
    stored.chmod(0o600)
    return start_node(node_home, api_key=OLD), stored


def test_a_key_rotation_drops_no_request(keyed: tuple[RunningNode, Path]) -> None:
    node, stored = keyed
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:  # a client that keeps using the old key while the key changes
        with httpx.Client(base_url=node.url, headers=bearer(OLD), timeout=30) as old_client:
            while not stop.is_set():
                statuses.append(old_client.get("/api/tags").status_code)

    try:
        with httpx.Client(base_url=node.url, timeout=120) as http:
            body = {
                "model": SMOLLM,
                "prompt": "Count to twenty.",
                "options": {"temperature": 0, "num_predict": 48},
            }
            with http.stream("POST", "/api/generate", json=body, headers=bearer(OLD)) as streaming:
                lines = streaming.iter_lines()
                first = json.loads(next(lines))  # the stream is under way, on the old key
                asker = threading.Thread(target=keep_asking)
                asker.start()

                change = {"api_key": NEW, "previous_key_valid_for": "1h"}
                answer = http.post("/api/avocado/credentials", json=change, headers=bearer(OLD))
                assert answer.status_code == 200, answer.text
                assert OLD not in answer.text and NEW not in answer.text
                assert answer.json()["api_key"]["changed"] and answer.json()["api_key"]["stored"]
                assert "note" not in answer.json()

                assert http.get("/api/tags", headers=bearer(NEW)).status_code == 200  # the new key at once
                assert http.get("/api/tags", headers=bearer(OLD)).status_code == 200  # the old one overlaps
                rest = [json.loads(line) for line in lines if line]
            assert streaming.status_code == 200 and not first["done"] and rest[-1]["done"]
            stop.set()
            asker.join()
            assert statuses and set(statuses) == {200}

            assert stored.read_text().strip() == NEW and stat.S_IMODE(stored.stat().st_mode) == 0o600
            report = http.get("/api/avocado/status", headers=bearer(NEW)).json()["api_key"]
            assert report == {"required": True, "source": "generated", "file": str(stored)}

            # No overlap: every replaced key is refused at once.
            change = {"api_key": NEWER, "previous_key_valid_for": "0"}
            assert http.post("/api/avocado/credentials", json=change, headers=bearer(NEW)).status_code == 200
            assert [http.get("/api/tags", headers=bearer(k)).status_code for k in (OLD, NEW, NEWER)] == [
                401,
                401,
                200,
            ]
    finally:
        stop.set()
        node.stop()


def test_the_replaced_key_is_refused_once_its_overlap_is_over(
    keyed: tuple[RunningNode, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, stored = keyed
    monkeypatch.setenv("AVOCADO_API_KEY", OLD)
    try:
        args = ["credentials", "--url", node.url, "--api-key-file", "-", "--previous-key-valid-for", "1s"]
        result = CliRunner().invoke(cli, args, input=NEW + "\n")  # the new key from stdin
        assert result.exit_code == 0, result.output
        assert "API key replaced (kept in the node's home)" in result.output
        assert OLD not in result.output and NEW not in result.output
        with httpx.Client(base_url=node.url, timeout=30) as http:
            assert http.get("/api/tags", headers=bearer(NEW)).status_code == 200
            refused = False
            for _ in range(100):  # the overlap ends by itself; no request needed to end it
                refused = http.get("/api/tags", headers=bearer(OLD)).status_code == 401
                if refused:
                    break
                threading.Event().wait(0.1)
            assert refused, "the replaced key still worked 10 s after a 1 s overlap"
            assert http.get("/api/tags", headers=bearer(NEW)).status_code == 200

        # A generated key, shown once; the current key is the one the node keeps in its home.
        monkeypatch.delenv("AVOCADO_API_KEY")
        args = ["credentials", "--home", str(stored.parent.parent), "--url", node.url, "--generate-api-key"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        generated = result.output.split("new API key (shown once): ")[1].strip()
        assert stored.read_text().strip() == generated
        assert httpx.get(f"{node.url}/api/tags", headers=bearer(generated)).status_code == 200
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{nope", 400, "invalid JSON in request body"),
        ({}, 400, "nothing to change"),
        ({"api_key": "short"}, 400, "api_key: Value error, a key has at least 8 characters"),
        ({"api_key": OLD}, 400, "the new key must be one the node does not accept yet"),
        ({"api_key": NEW, "previous_key_valid_for": "forever"}, 400, 'invalid duration "forever"'),
        ({"api_key": NEW, "previous_key_valid_for": "48h"}, 400, "a duration from 0 to 24h"),
        ({"api_key": NEW, "password": "x"}, 400, "password: Extra inputs are not permitted"),
        (
            {"amqp_url": "http://user:hunter22@broker/"},
            400,
            "amqp_url: Value error, an amqp:// or amqps:// URL",
        ),
        ({"amqp_url": "amqp://user:hunter22@broker/"}, 409, "this node does not announce"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(
    keyed: tuple[RunningNode, Path], body: object, status: int, message: str
) -> None:
    node, stored = keyed
    try:
        with httpx.Client(base_url=node.url, timeout=30, headers=bearer(OLD)) as http:
            content = body if isinstance(body, str) else json.dumps(body)
            answer = http.post("/api/avocado/credentials", content=content)
            assert answer.status_code == status and message in answer.json()["error"], answer.text
            assert "hunter22" not in answer.text
            assert http.get("/api/tags").status_code == 200
            assert http.get("/api/tags", headers=bearer(NEW)).status_code == 401
        assert httpx.post(f"{node.url}/api/avocado/credentials", json={"api_key": NEW}).status_code == 401
        assert stored.read_text().strip() == OLD
    finally:
        node.stop()


def test_a_node_without_a_key_has_none_to_rotate(http: httpx.Client) -> None:
    answer = http.post("/api/avocado/credentials", json={"api_key": NEW})
    assert answer.status_code == 403 and "start it with --api-key" in answer.json()["error"]


def test_a_node_in_front_of_ollama_rotates_its_key_too(node: RunningNode, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, port=free_port(), engine="ollama", api_key=OLD)
    running = serve(create_proxy_app(settings, node.url), settings.port)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            change = {"api_key": NEW, "previous_key_valid_for": "0"}
            answer = http.post("/api/avocado/credentials", json=change, headers=bearer(OLD))
            assert answer.status_code == 200 and answer.json()["api_key"]["stored"] is False
            assert "api_key came from the node's settings" in answer.json()["note"]
            assert http.get("/api/tags", headers=bearer(NEW)).status_code == 200
            assert http.get("/api/tags", headers=bearer(OLD)).status_code == 401
    finally:
        running.stop()
