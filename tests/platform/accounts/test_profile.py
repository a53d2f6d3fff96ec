"""My profile on SQLite and PostgreSQL: display name, preferences (a default model I may use, a
system prompt, a theme), an avatar, and deleting my account with all my data (the password is needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select

from avocado.platform.accounts.models import (
    AuthSession,
    Avatar,
    MfaFactor,
    PersonalKey,
    Preferences,
    RecoveryCode,
    RefreshToken,
    User,
)
from avocado.platform.admin.models import AuditEvent
from tests.platform.accounts.test_avatar import GIF
from tests.platform.support import PASSWORD, RunningPlatform, platform_settings, running
from tests.support import SMOLLM, RunningNode


@pytest.fixture
def fronting(node: RunningNode, database_url: str, tmp_path: Path) -> Iterator[RunningPlatform]:
    """A platform in front of the test node (default models are checked against it), on each backend."""
    yield from running(platform_settings(tmp_path / "home", database_url, upstream_url=node.url))


def test_display_name_and_preferences(fronting: RunningPlatform) -> None:
    fronting.register("ada@example.com", name="Ada")
    ada = fronting.sign_in("ada@example.com")
    renamed = ada.patch("/api/v1/users/me", json={"name": "  Ada Lovelace "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ada Lovelace"
    assert ada.patch("/api/v1/users/me", json={"name": ""}).status_code == 422

    defaults = {"default_model": None, "system_prompt": None, "theme": "system"}
    assert ada.get("/api/v1/users/me/preferences").json() == defaults
    changed = ada.patch(
        "/api/v1/users/me/preferences",
        json={"default_model": SMOLLM, "system_prompt": "Answer briefly.", "theme": "dark"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"default_model": SMOLLM, "system_prompt": "Answer briefly.", "theme": "dark"}
    only_theme = ada.patch("/api/v1/users/me/preferences", json={"theme": "light"}).json()
    assert only_theme == {"default_model": SMOLLM, "system_prompt": "Answer briefly.", "theme": "light"}
    cleared = ada.patch("/api/v1/users/me/preferences", json={"system_prompt": None, "theme": None}).json()
    assert cleared == {"default_model": SMOLLM, "system_prompt": None, "theme": "system"}
    assert ada.get("/api/v1/users/me/preferences").json() == cleared

    for bad, field in (
        ({"default_model": "no-such-model:7b"}, "default_model"),
        ({"theme": "purple"}, "theme"),
        ({"system_prompt": "x" * 8001}, "system_prompt"),
        ({"colour": "red"}, "colour"),
    ):
        answer = ada.patch("/api/v1/users/me/preferences", json=bad)
        assert answer.status_code == 422 and field in answer.json()["detail"], (bad, answer.text)
    assert ada.get("/api/v1/users/me/preferences").json() == cleared  # nothing stored


def _count(platform: RunningPlatform, model: type, user_id: str) -> int:
    column = model.id if model is User else model.user_id  # type: ignore[attr-defined]
    with platform.platform.keys._sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(column == user_id)) or 0)


def test_deleting_my_account_takes_all_my_data(fronting: RunningPlatform) -> None:
    fronting.register("root@example.com")
    root = fronting.sign_in("root@example.com")
    bob_id = fronting.register("bob@example.com")["id"]
    root.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = fronting.sign_in("bob@example.com")
    other_device = fronting.sign_in("bob@example.com")
    key = bob.post("/api/v1/users/me/api-keys", json={"name": "script"}).json()["key"]
    secret = bob.post("/api/v1/users/me/mfa").json()["secret"]
    bob.post("/api/v1/users/me/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    bob.patch("/api/v1/users/me/preferences", json={"theme": "dark"})
    assert bob.request("PUT", "/api/v1/users/me/avatar", files={"file": ("me.gif", GIF)}).status_code == 200
    for before in (User, AuthSession, PersonalKey, MfaFactor, RecoveryCode, Preferences, Avatar):
        assert _count(fronting, before, bob_id) >= 1, before

    assert bob.request("DELETE", "/api/v1/users/me", json={}).status_code == 422
    wrong = bob.request("DELETE", "/api/v1/users/me", json={"password": "not my password"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "password: wrong password"
    assert _count(fronting, User, bob_id) == 1

    assert bob.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}).status_code == 204
    for after in (User, AuthSession, PersonalKey, MfaFactor, RecoveryCode, Preferences, Avatar):
        assert _count(fronting, after, bob_id) == 0, after
    with fronting.platform.keys._sessions() as session:
        assert session.scalar(select(func.count()).select_from(RefreshToken)) == 1  # root's only
        deleted = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.deleted")).one()
        assert deleted.subject_id == bob_id
    assert bob.get("/api/v1/users/me").status_code == 401  # at once, not at the token's expiry
    assert other_device.get("/api/v1/users/me").status_code == 401
    with fronting.client() as http:
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        signin = http.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        assert signin.status_code == 401
    fronting.register("bob@example.com")  # the address is free again

    last_admin = root.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD})
    assert last_admin.status_code == 409 and root.get("/api/v1/users/me").status_code == 200
