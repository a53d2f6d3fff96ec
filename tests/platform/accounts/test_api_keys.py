"""Personal API keys: made (shown once, stored hashed), listed, revoked; revoked with a disabled
account and gone with a deleted one; another user's key is a 404. Each key is tried on ``/v1/models``
of a platform in front of a real node, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from avocado.platform.accounts.models import PersonalKey, User
from avocado.platform.accounts.tokens import digest
from tests.platform.support import RunningPlatform, platform_settings, running
from tests.support import SMOLLM, RunningNode


@pytest.fixture
def fronting(node: RunningNode, database_url: str, tmp_path: Path) -> Iterator[RunningPlatform]:
    """A platform in front of the test node, on each database backend."""
    yield from running(platform_settings(tmp_path / "home", database_url, upstream_url=node.url))


def _models(platform: RunningPlatform, key: str) -> httpx.Response:
    with platform.client() as http:
        return http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})


def test_a_key_is_shown_once_stored_hashed_listed_and_revoked(fronting: RunningPlatform) -> None:
    fronting.register("ada@example.com")
    ada = fronting.sign_in("ada@example.com")
    made = ada.post("/api/v1/users/me/api-keys", json={"name": "  my script "})
    assert made.status_code == 201, made.text
    created = made.json()
    key = created["key"]
    assert key.startswith("avk_") and len(key) > 40
    assert created["name"] == "my script" and key.startswith(created["prefix"])

    with fronting.platform.keys._sessions() as session:
        row = session.scalars(select(PersonalKey).where(PersonalKey.id == created["id"])).one()
        assert row.key_hash == digest(key) and key not in (row.key_hash, row.key_prefix)

    listed = ada.get("/api/v1/users/me/api-keys").json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0] and listed["next_cursor"] is None
    assert listed["items"][0]["last_used_at"] is None

    answer = _models(fronting, key)
    assert answer.status_code == 200, answer.text
    assert SMOLLM in [model["id"] for model in answer.json()["data"]]
    assert ada.get("/api/v1/users/me/api-keys").json()["items"][0]["last_used_at"] is not None

    assert ada.delete(f"/api/v1/users/me/api-keys/{created['id']}").status_code == 204
    refused = _models(fronting, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert ada.get("/api/v1/users/me/api-keys").json()["items"] == []
    assert ada.delete(f"/api/v1/users/me/api-keys/{created['id']}").status_code == 404
    actions = [e["action"] for e in ada.get("/api/v1/admin/audit").json()["items"]]
    assert {"api_key.created", "api_key.revoked"} <= set(actions)


def test_keys_page_newest_first_and_bad_input_stores_nothing(fronting: RunningPlatform) -> None:
    fronting.register("ada@example.com")
    ada = fronting.sign_in("ada@example.com")
    ids = [ada.post("/api/v1/users/me/api-keys", json={"name": f"k{i}"}).json()["id"] for i in range(3)]
    first = ada.get("/api/v1/users/me/api-keys", params={"limit": 2}).json()
    rest = ada.get("/api/v1/users/me/api-keys", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [k["id"] for k in first["items"] + rest["items"]] == ids[::-1] and rest["next_cursor"] is None
    for bad in ({}, {"name": ""}, {"name": "x" * 101}, {"name": 5}, {"name": "ok", "extra": 1}):
        answer = ada.post("/api/v1/users/me/api-keys", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    assert len(ada.get("/api/v1/users/me/api-keys").json()["items"]) == 3


def test_another_users_key_is_not_found_and_keys_end_with_the_account(fronting: RunningPlatform) -> None:
    fronting.register("ada@example.com")
    bob_id = fronting.register("bob@example.com")["id"]
    ada = fronting.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = fronting.sign_in("bob@example.com")
    bobs = bob.post("/api/v1/users/me/api-keys", json={"name": "bob's"}).json()
    assert ada.delete(f"/api/v1/users/me/api-keys/{bobs['id']}").status_code == 404
    assert ada.get("/api/v1/users/me/api-keys").json()["items"] == []
    assert _models(fronting, bobs["key"]).status_code == 200

    # disabled: the key stops, and stays revoked when the account is enabled again
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "disabled"})
    assert _models(fronting, bobs["key"]).status_code == 401
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    assert _models(fronting, bobs["key"]).status_code == 401
    assert fronting.sign_in("bob@example.com").get("/api/v1/users/me/api-keys").json()["items"] == []

    # deleted: the rows go with the account
    again = fronting.sign_in("bob@example.com").post("/api/v1/users/me/api-keys", json={"name": "n"}).json()
    with fronting.platform.keys._sessions.begin() as session:
        session.execute(delete(User).where(User.id == bob_id))
    with fronting.platform.keys._sessions() as session:
        assert session.scalars(select(PersonalKey).where(PersonalKey.user_id == bob_id)).all() == []
    assert _models(fronting, again["key"]).status_code == 401


def test_unknown_and_malformed_keys_are_refused_in_openais_shape(fronting: RunningPlatform) -> None:
    for key in ("avk_" + "x" * 43, "not-a-key", "avk_" + "y" * 200):
        answer = _models(fronting, key)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    with fronting.client() as http:
        anonymous = http.get("/v1/models")
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]["message"]
