"""The audit log (filters, keyset pages) and the settings store (validated, audited)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avocado.platform.build import PlatformRefused, open_services
from tests.platform.support import PASSWORD, RunningPlatform, platform_settings


def test_the_audit_log_filters_and_pages_newest_first(platform: RunningPlatform) -> None:
    admin_id = platform.register("ada@example.com")["id"]
    with platform.client() as http:
        for _ in range(3):
            http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "not the one"})
    admin = platform.sign_in("ada@example.com")
    failed = admin.get("/api/v1/admin/audit", params={"action": "signin.failed", "limit": 2}).json()
    assert [event["action"] for event in failed["items"]] == ["signin.failed"] * 2
    assert failed["items"][0]["id"] > failed["items"][1]["id"]
    assert failed["items"][0]["subject_id"] == admin_id and failed["items"][0]["address"] == "127.0.0.1"
    rest = admin.get(
        "/api/v1/admin/audit", params={"action": "signin.failed", "limit": 2, "cursor": failed["next_cursor"]}
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    mine = admin.get("/api/v1/admin/audit", params={"actor_id": admin_id}).json()["items"]
    assert [event["action"] for event in mine] == ["signin.succeeded", "user.registered"]
    future = admin.get("/api/v1/admin/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future == {"items": [], "next_cursor": None}
    for bad in ({"cursor": "WyJ4Il0"}, {"limit": 0}, {"limit": 1000}, {"since": "yesterday"}):
        answer = admin.get("/api/v1/admin/audit", params=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["detail"]


def test_audit_times_without_an_offset_are_utc(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    admin = platform.sign_in("ada@example.com")
    since = admin.get("/api/v1/admin/audit", params={"since": "2024-01-01T00:00:00"})
    assert since.status_code == 200, since.text
    assert [event["action"] for event in since.json()["items"]] == ["signin.succeeded", "user.registered"]
    until = admin.get("/api/v1/admin/audit", params={"until": "2024-01-01T00:00:00"})
    assert until.status_code == 200 and until.json()["items"] == []
    future = admin.get("/api/v1/admin/audit", params={"since": "2999-01-01T00:00:00"})
    assert future.status_code == 200 and future.json()["items"] == []


def test_settings_changes_are_validated_and_audited(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    admin = platform.sign_in("ada@example.com")
    assert admin.get("/api/v1/admin/settings").json() == {
        "signup_policy": "approval",
        "retention_archived_days": None,
        "max_conversations_per_user": None,
    }
    bad = admin.patch("/api/v1/admin/settings", json={"signup_policy": "everyone"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "signup_policy"
    unknown = admin.patch("/api/v1/admin/settings", json={"colour": "green"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "colour"

    assert (
        admin.patch("/api/v1/admin/settings", json={"signup_policy": "open"}).json()["signup_policy"]
        == "open"
    )
    assert platform.register("bob@example.com")["status"] == "active"
    assert admin.patch("/api/v1/admin/settings", json={"signup_policy": "closed"}).status_code == 200
    with platform.client() as http:
        closed = http.post(
            "/api/v1/auth/register", json={"email": "eve@example.com", "password": PASSWORD, "name": "Eve"}
        )
    assert closed.status_code == 403 and "closed" in closed.json()["detail"]
    changes = admin.get("/api/v1/admin/audit", params={"action": "settings.changed"}).json()["items"]
    assert [event["detail"] for event in changes] == [
        {"key": "signup_policy", "old": "open", "new": "closed"},
        {"key": "signup_policy", "old": "approval", "new": "open"},
    ]


def test_production_refuses_an_open_sign_up(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/p.sqlite3"
    built = open_services(platform_settings(tmp_path / "home", database))
    built.platform.site.update({"signup_policy": "open"}, actor_id=None, address="test")
    built.engine.dispose()
    production = platform_settings(
        tmp_path / "home",
        database,
        production=True,
        signing_key="k" * 40,
        public_url="https://chat.example.com",
        argon2_memory=19456,
        argon2_time=2,
    )
    with pytest.raises(PlatformRefused, match="open to all"):
        open_services(production)
