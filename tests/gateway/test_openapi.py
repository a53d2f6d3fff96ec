"""The gateway's OpenAPI describes every route it serves, with the statuses those routes really answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import Built, start_built, start_standin

MASTER = "master-0123456789abcdef-openapi"
EXPECTED = {
    ("/api/generate", "post"), ("/api/chat", "post"), ("/api/embed", "post"), ("/api/embeddings", "post"),
    ("/api/show", "post"), ("/v1/chat/completions", "post"), ("/v1/completions", "post"),
    ("/v1/embeddings", "post"), ("/api/version", "get"), ("/api/tags", "get"), ("/api/ps", "get"),
    ("/v1/models", "get"), ("/v1/models/{model}", "get"), ("/api/avocado/nodes", "get"),
    ("/api/pull", "post"), ("/api/push", "post"), ("/api/create", "post"), ("/api/copy", "post"),
    ("/api/delete", "delete"), ("/api/blobs/{digest}", "head"), ("/api/blobs/{digest}", "post"),
    ("/health/live", "get"), ("/health/ready", "get"), ("/metrics", "get"),
    ("/api/avocado/keys", "get"), ("/api/avocado/keys", "post"), ("/api/avocado/keys/{key_id}", "get"),
    ("/api/avocado/keys/{key_id}", "delete"), ("/api/avocado/keys/users", "get"),
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    standin = start_standin()
    running = start_built(home=tmp_path_factory.mktemp("openapi"), nodes=[standin.url], master_key=MASTER)
    yield running
    running.stop()
    standin.stop()


@pytest.fixture(scope="module")
def document(gateway: Built) -> dict[str, Any]:
    with gateway.client() as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_route_is_described_and_none_lists_a_422(document: dict[str, Any]) -> None:
    described = {(path, method) for path, method, _ in operations(document)}
    assert described == EXPECTED
    for path, method, operation in operations(document):
        assert "422" not in operation["responses"], (path, method)  # bad input is a 400 here
    generate = document["paths"]["/api/generate"]["post"]
    assert generate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "GenerateRequest"
    )
    assert set(generate["responses"]["200"]["content"]) == {"application/json", "application/x-ndjson"}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert chat["429"]["content"]["application/json"]["schema"]["properties"]["error"]["type"] == "object"


def _call(gateway: Built, path: str, method: str, key: str | None) -> int:
    concrete = path.replace("{model}", "standin:1").replace("{key_id}", "no-such-key")
    concrete = concrete.replace("{digest}", "sha256:" + "0" * 64)
    body: dict[str, Any] = {"content": b"{}"} if method in ("post", "delete") else {}
    with gateway.client(key) as http:
        return http.request(method.upper(), concrete, **body).status_code


@pytest.mark.parametrize("key", [None, MASTER], ids=["no key", "master key"])
def test_the_statuses_answered_are_the_statuses_described(
    gateway: Built, document: dict[str, Any], key: str | None
) -> None:
    """Each operation called with an empty body (and no key, or the master key) answers a status its
    description lists."""
    for path, method, operation in operations(document):
        status = _call(gateway, path, method, key)
        assert str(status) in operation["responses"], (path, method, status, sorted(operation["responses"]))


def test_a_described_route_the_app_does_not_serve_is_left_out(tmp_path: Path) -> None:
    from avocado.gateway.app import create_gateway_app
    from avocado.gateway.nodes import NodePool

    bare = create_gateway_app(NodePool())  # no metrics route, no keys router
    paths = bare.openapi()["paths"]
    assert "/metrics" not in paths and "/api/avocado/keys" not in paths and "/api/generate" in paths
