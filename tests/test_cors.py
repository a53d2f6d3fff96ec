"""One browser-origin policy: the node, the node in front of Ollama and the gateway answer alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from avocado.gateway.nodes import NodePool
from tests.gateway.support import start_gateway
from tests.node.proxy.test_proxy import start_proxy
from tests.support import RunningNode, start_node

KEY = "cors-test-key-0123"
EXTRA = "https://ui.example"
ALLOWED = [
    "http://localhost:3000",
    "https://127.0.0.1",
    "http://0.0.0.0:8080",
    "http://[::1]:5173",
    "app://obsidian.md",
    "file://",
    "tauri://localhost",
    "vscode-webview://1a2b3c",
    "vscode-file://vscode-app",
    EXTRA,
]
REFUSED = ["https://evil.example", "http://localhost.evil.example", "null"]


@pytest.fixture(scope="module")
def apps(node: RunningNode, home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The three apps, each with the extra origin; the two node apps also require a key."""
    keyed = start_node(home, api_key=KEY, origins=[EXTRA])
    proxy = start_proxy(tmp_path_factory.mktemp("proxy"), node.url, api_key=KEY, origins=[EXTRA])
    gateway = start_gateway(NodePool([node.url]), origins=[EXTRA])
    yield {"node": keyed.url, "proxy": proxy.url, "gateway": gateway.url}
    for running in (keyed, proxy, gateway):
        running.stop()


def preflight(url: str, origin: str) -> tuple[int, str | None, str | None, str | None]:
    answer = httpx.options(
        f"{url}/api/chat",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    headers = answer.headers
    return (
        answer.status_code,
        headers.get("access-control-allow-origin"),
        headers.get("access-control-allow-methods"),
        headers.get("access-control-allow-headers"),
    )


def test_every_app_answers_preflights_alike_and_allows_ollamas_origins(apps: dict[str, str]) -> None:
    for origin in ALLOWED:
        answers = {name: preflight(url, origin) for name, url in apps.items()}
        assert len(set(answers.values())) == 1, (origin, answers)
        status, allowed, methods, headers = answers["node"]
        # A preflight carries no key: it is answered before the key is asked for.
        assert (status, allowed) == (200, origin), origin
        assert methods is not None and "POST" in methods
        assert headers is not None and "authorization" in headers.lower()
    for origin in REFUSED:
        answers = {name: preflight(url, origin) for name, url in apps.items()}
        assert set(answers.values()) == {(400, None, answers["node"][2], answers["node"][3])}, answers


def test_pages_may_read_the_request_id(apps: dict[str, str]) -> None:
    for name, url in apps.items():
        answer = httpx.get(f"{url}/api/version", headers={"Origin": "http://localhost:3000"})
        assert answer.headers["access-control-allow-origin"] == "http://localhost:3000", name
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower(), name
