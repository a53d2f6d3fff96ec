"""Management through the gateway's master key (``gateway_key``): the gateway's nodes and its usage
per user, for administrators. In front of our gateway with its key they work; in front of a node,
or with a key the gateway refuses, they are hidden (``404``, and ``management: false`` in the
public config), not broken. Real node, real gateway, real HTTP."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avocado.config import GatewaySettings
from avocado.gateway.build import build_gateway
from avocado.serving import uvicorn_options
from tests.gateway.support import Built, start_built
from tests.platform.support import RunningPlatform, Session, platform_settings, running
from tests.support import SMOLLM, RunningNode, free_port, serve

MASTER = "platform-management-master-key-0123456789"
HIDDEN = "management needs our gateway and its key"


def _up_gateway(home: Path, node: RunningNode, **extra: Any) -> GatewaySettings:
    """A gateway as ``avocado up`` starts it: a master key, no key required on requests."""
    return GatewaySettings(
        home=home, nodes=[node.url], master_key=MASTER, require_key=False, open_management=True, **extra
    )


@pytest.fixture
def gateway(node: RunningNode, tmp_path: Path) -> Iterator[Built]:
    built = start_built(**_up_gateway(tmp_path / "gateway", node).model_dump(exclude_unset=True))
    yield built
    built.running.stop()


def _platform(tmp_path: Path, database_url: str, upstream: str, key: str | None) -> Iterator[RunningPlatform]:
    settings = platform_settings(tmp_path / "home", database_url, upstream_url=upstream, gateway_key=key)
    return running(settings)


def _admin_and_user(started: RunningPlatform) -> tuple[Session, Session]:
    started.register("ada@example.com", name="Ada")
    ada = started.sign_in("ada@example.com")
    assert ada.patch("/api/v1/admin/settings", json={"signup_policy": "open"}).status_code == 200
    started.register("bob@example.com", name="Bob")
    return ada, started.sign_in("bob@example.com")


def _config(started: RunningPlatform) -> dict[str, Any]:
    with started.client() as http:  # public: no one signed in
        answer = http.get("/api/v1/auth/config")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_in_front_of_our_gateway_with_its_key(gateway: Built, database_url: str, tmp_path: Path) -> None:
    for started in _platform(tmp_path, database_url, gateway.url, MASTER):
        config = _config(started)
        assert config == {"signup_policy": "approval", "mfa": True, "management": True}
        ada, bob = _admin_and_user(started)

        nodes = ada.get("/api/v1/admin/gateway/nodes")
        assert nodes.status_code == 200, nodes.text
        (entry,) = nodes.json()["items"]
        assert entry["healthy"] is True and SMOLLM in entry["models"] and "api_key" not in entry
        assert nodes.json()["next_cursor"] is None

        # The gateway key is the service credential too (no upstream_key): usage is metered per user.
        for session, times in ((ada, 1), (bob, 3)):
            for _ in range(times):
                assert session.get("/api/v1/models").status_code == 200
        gateway.app.state.keys.flush()
        usage = ada.get("/api/v1/admin/gateway/usage")
        assert usage.status_code == 200, usage.text
        rows = {row["email"]: row for row in usage.json()["items"]}
        assert set(rows) == {"ada@example.com", "bob@example.com"}
        assert rows["bob@example.com"]["requests"] == 3 and rows["ada@example.com"]["requests"] == 1
        assert rows["bob@example.com"]["name"] == "Bob" and rows["bob@example.com"]["last_used_at"]
        assert [row["email"] for row in usage.json()["items"]] == ["bob@example.com", "ada@example.com"]

        first = ada.get("/api/v1/admin/gateway/usage", params={"limit": 1}).json()
        assert [row["email"] for row in first["items"]] == ["bob@example.com"] and first["next_cursor"]
        rest = ada.get("/api/v1/admin/gateway/usage", params={"cursor": first["next_cursor"]}).json()
        assert [row["email"] for row in rest["items"]] == ["ada@example.com"] and rest["next_cursor"] is None
        bad = ada.get("/api/v1/admin/gateway/usage", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422

        for path in ("/api/v1/admin/gateway/nodes", "/api/v1/admin/gateway/usage"):
            assert bob.get(path).status_code == 403
            with started.client() as anonymous:
                assert anonymous.get(path).status_code == 401


def test_a_user_deleted_since_keeps_their_usage_without_an_email(gateway: Built, tmp_path: Path) -> None:
    for started in _platform(tmp_path, f"sqlite:///{tmp_path}/p.sqlite3", gateway.url, MASTER):
        ada, bob = _admin_and_user(started)
        assert bob.get("/api/v1/models").status_code == 200
        bob_id = bob.get("/api/v1/users/me").json()["id"]
        assert (
            bob.request("DELETE", "/api/v1/users/me", json={"password": "correct horse battery"}).status_code
            == 204
        )
        gateway.app.state.keys.flush()
        (row,) = ada.get("/api/v1/admin/gateway/usage").json()["items"]
        assert row == {**row, "user_id": bob_id, "email": None, "name": None, "requests": 1}


def test_directly_in_front_of_a_node_management_is_hidden(
    node: RunningNode, database_url: str, tmp_path: Path
) -> None:
    for started in _platform(tmp_path, database_url, node.url, MASTER):
        assert _config(started)["management"] is False
        ada, _ = _admin_and_user(started)
        assert SMOLLM in [m["name"] for m in ada.get("/api/v1/models").json()["items"]]  # the rest works
        for path in ("/api/v1/admin/gateway/nodes", "/api/v1/admin/gateway/usage"):
            hidden = ada.get(path)
            assert hidden.status_code == 404 and hidden.json() == {"detail": HIDDEN}


def test_without_a_key_management_is_hidden(gateway: Built, tmp_path: Path) -> None:
    for started in _platform(tmp_path, f"sqlite:///{tmp_path}/p.sqlite3", gateway.url, None):
        assert _config(started)["management"] is False
        ada, _ = _admin_and_user(started)
        assert ada.get("/api/v1/admin/gateway/nodes").json() == {"detail": HIDDEN}


def test_a_wrong_key_hides_management_and_is_logged_without_the_key(
    gateway: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-master-key-but-a-long-one-0123456789"
    caplog.set_level(logging.INFO)
    for started in _platform(tmp_path, f"sqlite:///{tmp_path}/p.sqlite3", gateway.url, wrong):
        assert _config(started)["management"] is False
        ada, _ = _admin_and_user(started)
        hidden = ada.get("/api/v1/admin/gateway/usage")
        assert hidden.status_code == 404 and hidden.json() == {"detail": HIDDEN}
        assert ada.get("/api/v1/models").status_code == 200  # this gateway requires no key on requests
    refusals = [r for r in caplog.records if "refused the platform's gateway_key" in r.getMessage()]
    assert refusals and refusals[0].levelno == logging.WARNING
    assert all(wrong not in record.getMessage() for record in caplog.records)
    assert wrong not in caplog.text


def test_a_gateway_that_comes_up_after_the_platform_is_found(node: RunningNode, tmp_path: Path) -> None:
    """``avocado up`` starts the platform before its gateway listens: asked again, management turns on."""
    port = free_port()
    for started in _platform(tmp_path, f"sqlite:///{tmp_path}/p.sqlite3", f"http://127.0.0.1:{port}", MASTER):
        assert _config(started)["management"] is False
        settings = _up_gateway(tmp_path / "gateway", node)
        late = serve(build_gateway(settings), port, http=uvicorn_options(settings)["http"])
        try:
            deadline = time.monotonic() + 15
            while not _config(started)["management"]:
                assert time.monotonic() < deadline, "management never turned on"
                time.sleep(0.5)
        finally:
            late.stop()
