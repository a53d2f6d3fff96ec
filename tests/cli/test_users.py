"""``avocado users`` on the platform's database, while a platform runs on it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import typer
from typer.testing import CliRunner, Result

from avocado.cli.platform import register
from avocado.platform.errors import Unauthorized
from tests.platform.support import PASSWORD, RunningPlatform, platform_settings, running


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", revocation_poll="0.2s")
    yield from running(settings)


def users(platform: RunningPlatform, *args: str, stdin: str | None = None) -> Result:
    app = typer.Typer()
    register(app)
    env = {
        "AVOCADO_HOME": str(platform.settings.home),
        "AVOCADO_DATABASE_URL": platform.settings.database,
        "AVOCADO_PLATFORM_ARGON2_MEMORY": "64",
        "AVOCADO_PLATFORM_ARGON2_TIME": "1",
    }
    return CliRunner().invoke(app, ["users", *args], env=env, input=stdin)


def test_create_list_approve_and_set_role(platform: RunningPlatform) -> None:
    created = users(
        platform, "create", "ada@example.com", "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert created.exit_code == 0, created.output
    platform.sign_in("ada@example.com")  # the account works with the platform at once
    bob = platform.register("bob@example.com", "Bob")
    assert bob["status"] == "pending"  # ada came first: bob follows the approval policy

    listed = json.loads(users(platform, "list", "--json").stdout)
    assert [(u["email"], u["role"], u["status"]) for u in listed] == [
        ("ada@example.com", "admin", "active"),
        ("bob@example.com", "user", "pending"),
    ]
    table = users(platform, "list", "--status", "pending").stdout.splitlines()
    assert table[0].split()[:4] == ["EMAIL", "NAME", "ROLE", "STATUS"] and len(table) == 2

    assert users(platform, "approve", "bob@example.com").exit_code == 0
    platform.sign_in("bob@example.com")
    assert users(platform, "set-role", "bob@example.com", "admin").exit_code == 0
    assert users(platform, "set-role", "ada@example.com", "user").exit_code == 0
    last = users(platform, "disable", "bob@example.com")
    assert last.exit_code == 1 and "last active administrator" in last.output

    audit = json.loads(users(platform, "audit", "--user", "bob@example.com", "--json").stdout)
    actions = [event["action"] for event in audit]
    assert {"user.role_changed", "user.status_changed", "signin.succeeded", "user.registered"} <= set(actions)
    changes = [event for event in audit if event["action"] in ("user.role_changed", "user.status_changed")]
    assert len(changes) == 2 and all(
        event["address"] == "cli" and event["actor_id"] is None for event in changes
    )


def test_disable_ends_the_sessions_of_a_running_platform(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    platform.register("bob@example.com")
    assert users(platform, "approve", "bob@example.com").exit_code == 0
    bob = platform.sign_in("bob@example.com")
    key = bob.post("/api/v1/users/me/api-keys", json={"name": "script"}).json()["key"]
    assert platform.platform.keys.authenticate(key).user_id == bob.get("/api/v1/users/me").json()["id"]
    assert users(platform, "disable", "bob@example.com").exit_code == 0
    deadline = time.monotonic() + 3
    while bob.get("/api/v1/users/me").status_code == 200:
        assert time.monotonic() < deadline, "the platform did not notice within 3 s"
        time.sleep(0.05)
    with platform.client() as http:
        refused = http.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert refused.status_code == 403
    with pytest.raises(Unauthorized):  # the operator's disable revokes the API keys too, for good
        platform.platform.keys.authenticate(key)
    assert users(platform, "enable", "bob@example.com").exit_code == 0
    with pytest.raises(Unauthorized):
        platform.platform.keys.authenticate(key)


def test_reset_link_prints_a_link_that_works_once(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    link = users(platform, "reset-link", "ada@example.com")
    assert link.exit_code == 0, link.output
    url = link.stdout.strip()
    assert url.startswith(f"{platform.settings.local_url}/reset-password#token=avp_")
    with platform.client() as http:
        token = url.split("#token=")[1]
        done = http.post("/api/v1/auth/password-reset", json={"token": token, "password": "fresh password"})
        assert done.status_code == 204
    platform.sign_in("ada@example.com", "fresh password")


def test_mistakes_are_clear(platform: RunningPlatform) -> None:
    unknown = users(platform, "approve", "nobody@example.com")
    assert unknown.exit_code == 1 and "no account" in unknown.output
    weak = users(platform, "create", "eve@example.com", "--password-stdin", stdin="short")
    assert weak.exit_code == 2 and "password" in weak.output
    assert users(platform, "set-role", "eve@example.com", "king").exit_code == 2
    assert users(platform, "list", "--status", "sleeping").exit_code == 2


def test_approve_lets_only_a_pending_account_in(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    platform.register("bob@example.com")
    assert users(platform, "approve", "bob@example.com").exit_code == 0
    assert users(platform, "disable", "bob@example.com").exit_code == 0
    again = users(platform, "approve", "bob@example.com")  # a disabled account is not pending
    assert again.exit_code == 1 and "disabled, not pending" in again.output
    listed = {u["email"]: u["status"] for u in json.loads(users(platform, "list", "--json").stdout)}
    assert listed["bob@example.com"] == "disabled"
    assert users(platform, "enable", "bob@example.com").exit_code == 0  # the way back in, said so
    platform.sign_in("bob@example.com")


def test_the_first_account_created_on_a_fresh_platform_is_its_admin(platform: RunningPlatform) -> None:
    first = users(platform, "create", "ada@example.com", "--password-stdin", stdin=PASSWORD)
    assert first.exit_code == 0 and "ada@example.com (admin)" in first.output
    second = users(platform, "create", "bob@example.com", "--password-stdin", stdin=PASSWORD)
    assert second.exit_code == 0 and "bob@example.com (user)" in second.output
    admin = platform.sign_in("ada@example.com")
    assert admin.get("/api/v1/admin/users").status_code == 200
    created = admin.get("/api/v1/admin/audit", params={"action": "user.created"}).json()["items"]
    assert [(e["detail"]["role"], e["address"], e["actor_id"]) for e in created] == [
        ("user", "cli", None),
        ("admin", "cli", None),
    ]


def test_reset_mfa_turns_two_factor_off(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    secret = ada.post("/api/v1/users/me/mfa").json()["secret"]
    ada.post("/api/v1/users/me/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert platform.platform.mfa.enabled(ada.get("/api/v1/users/me").json()["id"])
    done = users(platform, "reset-mfa", "ada@example.com")
    assert done.exit_code == 0 and "turned off" in done.output
    assert not platform.platform.mfa.enabled(ada.get("/api/v1/users/me").json()["id"])
    assert "was not on" in users(platform, "reset-mfa", "ada@example.com").output
    assert users(platform, "reset-mfa", "nobody@example.com").exit_code == 1
