"""``GET /api/v1/models``: what the upstream lists, reached over HTTP only, in front of a real node
and in front of a real gateway (keys required: the platform's service credential is one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.support import Built, start_built
from tests.platform.support import RunningPlatform, platform_settings, running
from tests.support import GEMMA, SMOLLM, RunningNode, free_port

MASTER = "platform-test-master-key-0123456789"


def _platform(tmp_path: Path, upstream: str, key: str | None = None) -> Iterator[RunningPlatform]:
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", upstream_url=upstream, upstream_key=key
    )
    return running(settings)


@pytest.fixture
def gateway(node: RunningNode, tmp_path: Path) -> Iterator[Built]:
    built = start_built(home=tmp_path / "gateway", nodes=[node.url], master_key=MASTER, require_key=True)
    yield built
    built.running.stop()


def test_models_come_from_a_node(node: RunningNode, tmp_path: Path) -> None:
    for started in _platform(tmp_path, node.url):
        started.register("ada@example.com")
        ada = started.sign_in("ada@example.com")
        listed = ada.get("/api/v1/models").json()
        names = [item["name"] for item in listed["items"]]
        assert {SMOLLM, GEMMA} <= set(names) and names == sorted(names)
        assert listed["next_cursor"] is None
        smollm = next(item for item in listed["items"] if item["name"] == SMOLLM)
        assert smollm["size"] > 0 and smollm["details"]["format"] == "gguf"

        first = ada.get("/api/v1/models", params={"limit": 1}).json()
        assert [m["name"] for m in first["items"]] == names[:1] and first["next_cursor"]
        rest = ada.get("/api/v1/models", params={"limit": 100, "cursor": first["next_cursor"]}).json()
        assert [m["name"] for m in rest["items"]] == names[1:]


def test_models_through_a_gateway_with_the_service_credential(gateway: Built, tmp_path: Path) -> None:
    with gateway.client(MASTER) as admin:
        key = admin.post("/api/avocado/keys", json={"name": "platform"}).json()["key"]
    for started in _platform(tmp_path / "with-key", gateway.url, key):
        started.register("ada@example.com")
        names = [m["name"] for m in started.sign_in("ada@example.com").get("/api/v1/models").json()["items"]]
        assert SMOLLM in names
    for started in _platform(tmp_path / "without", gateway.url):
        started.register("ada@example.com")
        refused = started.sign_in("ada@example.com").get("/api/v1/models")
        assert refused.status_code == 502
        assert "refused the platform's credential" in refused.json()["detail"]


def test_an_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    for started in _platform(tmp_path, f"http://127.0.0.1:{free_port()}"):
        started.register("ada@example.com")
        answer = started.sign_in("ada@example.com").get("/api/v1/models")
        assert answer.status_code == 502 and "cannot be reached" in answer.json()["detail"]
