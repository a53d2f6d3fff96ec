"""A node's logs and errors hold neither its API key nor a password in a URL it was given."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from avocado.node.presence import Presence
from tests.node.proxy.test_proxy import start_proxy
from tests.support import free_port, linked_home, start_node

KEY = "k3y-that-must-not-be-logged"
PASSWORD = "pa55-in-the-url"


def test_the_node_logs_neither_its_key_nor_its_public_urls_password(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running = start_node(
        linked_home(home, tmp_path / "home"),
        api_key=KEY,
        tunnel_url=f"https://node:{PASSWORD}@node.example",
    )
    try:
        presence: Presence = running.app.state.presence
        deadline = time.monotonic() + 10
        while "public URL" not in caplog.text:  # the supervisor reports the URL as it comes up
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert presence.public_url == f"https://node:{PASSWORD}@node.example"  # announced as given
        with running.client() as http:
            assert http.get("/api/tags", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
            assert http.get("/api/tags", headers={"Authorization": f"Bearer {KEY}x"}).status_code == 401
            assert http.get("/api/tags").status_code == 401
    finally:
        running.stop()
    assert "public URL https://node:***@node.example" in caplog.text
    assert KEY not in caplog.text and PASSWORD not in caplog.text


def test_the_ollama_proxy_shows_its_upstream_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = f"http://me:{PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    proxy = start_proxy(tmp_path / "home", upstream)
    try:
        answer = httpx.get(f"{proxy.url}/api/tags")
        status = httpx.get(f"{proxy.url}/api/avocado/status").json()
    finally:
        proxy.stop()
    assert answer.status_code == 502 and "http://me:***@127.0.0.1" in answer.json()["error"]
    assert PASSWORD not in answer.text and PASSWORD not in str(status)
    assert "does not answer yet" in caplog.text and PASSWORD not in caplog.text
