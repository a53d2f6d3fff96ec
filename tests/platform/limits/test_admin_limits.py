"""The limits' administration on both databases: role defaults in the settings store (audited),
a user's override field by field, what a user sees of their own limits, who may do what, and bad
input answered ``422`` naming the field."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from avocado.db import make_engine
from avocado.platform.limits.schemas import LimitValues
from tests.platform.limits.support import people
from tests.platform.support import PASSWORD, RunningPlatform

UNLIMITED = {"requests_per_minute": None, "concurrent_requests": None, "tokens_per_day": None, "models": None}


def test_role_defaults_are_a_setting_and_every_change_is_audited(platform: RunningPlatform) -> None:
    who = people(platform)
    assert who.admin.get("/api/v1/admin/limits").json() == {"admin": UNLIMITED, "user": UNLIMITED}

    user_limits = {"requests_per_minute": 20, "concurrent_requests": 2, "tokens_per_day": 50_000}
    answer = who.admin.request(
        "PUT", "/api/v1/admin/limits", json={"user": {**user_limits, "models": ["smollm2:*"]}}
    )
    assert answer.status_code == 200, answer.text
    expected = {"admin": UNLIMITED, "user": {**user_limits, "models": ["smollm2:*"]}}
    assert answer.json() == expected
    assert who.admin.get("/api/v1/admin/limits").json() == expected

    # A role given is replaced whole: a field left out is no limit; a role left out stays.
    who.admin.request(
        "PUT", "/api/v1/admin/limits", json={"user": {"tokens_per_day": 10}, "admin": {"tokens_per_day": 99}}
    )
    assert who.admin.get("/api/v1/admin/limits").json() == {
        "admin": {**UNLIMITED, "tokens_per_day": 99},
        "user": {**UNLIMITED, "tokens_per_day": 10},
    }

    events = who.admin.get("/api/v1/admin/audit", params={"action": "settings.changed"}).json()["items"]
    assert [event["detail"]["key"] for event in events] == ["role_limits", "role_limits"]
    assert events[0]["actor_id"] == who.admin_id
    assert events[0]["detail"]["new"]["user"]["tokens_per_day"] == 10
    assert events[1]["detail"]["old"]["user"] == UNLIMITED

    mine = who.user.get("/api/v1/users/me/limits").json()
    assert mine["limits"] == {**UNLIMITED, "tokens_per_day": 10}
    assert mine["usage"]["requests_last_minute"] == 0 and mine["usage"]["tokens_today"] == 0
    assert mine["usage"]["tokens_reset_at"].endswith(("T00:00:00Z", "T00:00:00+00:00"))
    assert who.admin.get("/api/v1/users/me/limits").json()["limits"]["tokens_per_day"] == 99


def test_a_user_s_override_sets_some_fields_and_the_role_gives_the_rest(platform: RunningPlatform) -> None:
    who = people(platform)
    role = {
        "requests_per_minute": 5,
        "concurrent_requests": 1,
        "tokens_per_day": 1000,
        "models": ["smollm2:*"],
    }
    who.admin.request("PUT", "/api/v1/admin/limits", json={"user": role})
    path = f"/api/v1/admin/users/{who.user_id}/limits"

    none_yet = who.admin.get(path).json()
    assert none_yet["override"] == {} and none_yet["effective"] == role and none_yet["role"] == "user"
    assert none_yet["updated_at"] is None

    # null in an override is "no limit for this user", not "the role's"
    body = {"requests_per_minute": None, "tokens_per_day": 250, "models": ["gemma3:*", "smollm2:135m"]}
    answer = who.admin.request("PUT", path, json=body)
    assert answer.status_code == 200, answer.text
    described = answer.json()
    assert described["override"] == body
    assert described["defaults"] == role
    assert described["effective"] == {**role, **body}
    assert described["updated_at"] is not None
    assert who.admin.get(path).json()["effective"] == {**role, **body}
    assert who.user.get("/api/v1/users/me/limits").json()["limits"] == {**role, **body}

    # PUT replaces the override: a field no longer given follows the role again
    who.admin.request("PUT", path, json={"concurrent_requests": 3})
    assert who.user.get("/api/v1/users/me/limits").json()["limits"] == {**role, "concurrent_requests": 3}

    assert who.admin.delete(path).status_code == 204
    assert who.admin.get(path).json()["override"] == {}
    assert who.user.get("/api/v1/users/me/limits").json()["limits"] == role
    assert who.admin.delete(path).status_code == 204  # nothing left to clear: still done

    actions = [
        (event["action"], event["subject_id"], event["actor_id"])
        for event in who.admin.get("/api/v1/admin/audit", params={"subject_id": who.user_id}).json()["items"]
        if event["action"].startswith("limits.")
    ]
    assert actions == [
        ("limits.override_cleared", who.user_id, who.admin_id),
        ("limits.override_set", who.user_id, who.admin_id),
        ("limits.override_set", who.user_id, who.admin_id),
    ]


def test_an_override_goes_with_the_account(platform: RunningPlatform) -> None:
    who = people(platform)
    path = f"/api/v1/admin/users/{who.user_id}/limits"
    assert who.admin.request("PUT", path, json={"tokens_per_day": 7}).status_code == 200
    assert _overrides(platform) == 1
    gone = who.user.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD})
    assert gone.status_code == 204, gone.text
    assert who.admin.get(path).status_code == 404
    assert _overrides(platform) == 0


def _overrides(platform: RunningPlatform) -> int:
    engine = make_engine(platform.settings.database)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM user_limits")).scalar_one())
    finally:
        engine.dispose()


def test_only_admins_administer_limits_and_unknown_users_are_404(platform: RunningPlatform) -> None:
    who = people(platform)
    routes = [
        ("GET", "/api/v1/admin/limits", None),
        ("PUT", "/api/v1/admin/limits", {"user": {"tokens_per_day": 1}}),
        ("GET", f"/api/v1/admin/users/{who.admin_id}/limits", None),
        ("PUT", f"/api/v1/admin/users/{who.admin_id}/limits", {"tokens_per_day": 1}),
        ("DELETE", f"/api/v1/admin/users/{who.admin_id}/limits", None),
        ("GET", f"/api/v1/admin/users/{who.user_id}/limits", None),  # their own override too
        ("PUT", f"/api/v1/admin/users/{who.user_id}/limits", {"tokens_per_day": None}),
        ("DELETE", f"/api/v1/admin/users/{who.user_id}/limits", None),
    ]
    with platform.client() as anonymous:
        for method, path, body in routes:
            assert who.user.request(method, path, json=body).status_code == 403, (method, path)
            assert anonymous.request(method, path, json=body).status_code == 401, (method, path)
        assert anonymous.get("/api/v1/users/me/limits").status_code == 401
    # nothing the user tried changed anything
    assert who.admin.get("/api/v1/admin/limits").json() == {"admin": UNLIMITED, "user": UNLIMITED}
    assert who.admin.get(f"/api/v1/admin/users/{who.admin_id}/limits").json()["override"] == {}
    assert who.admin.get(f"/api/v1/admin/users/{who.user_id}/limits").json()["override"] == {}

    unknown = f"/api/v1/admin/users/{uuid.uuid4()}/limits"
    for method, body in (("GET", None), ("PUT", {"tokens_per_day": 5}), ("DELETE", None)):
        answer = who.admin.request(method, unknown, json=body)
        assert answer.status_code == 404, method
        assert answer.json() == {"detail": "no such user"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": {"requests_per_minute": 0}}, "user.requests_per_minute"),
        ({"user": {"concurrent_requests": -1}}, "user.concurrent_requests"),
        ({"admin": {"tokens_per_day": "lots"}}, "admin.tokens_per_day"),
        ({"user": {"models": "smollm2:*"}}, "user.models"),
        ({"user": {"models": ["has space"]}}, "user.models.0"),
        ({"user": {"models": ["x" * 201]}}, "user.models.0"),
        ({"user": {"models": ["m"] * 101}}, "user.models"),
        ({"user": {"rpm": 3}}, "user.rpm"),
        ({"guest": {}}, "guest"),
    ],
)
def test_bad_role_limits_are_422_naming_the_field(
    sqlite_platform: RunningPlatform, body: dict[str, object], field: str
) -> None:
    who = people(sqlite_platform)
    answer = who.admin.request("PUT", "/api/v1/admin/limits", json=body)
    assert answer.status_code == 422, answer.text
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert answer.json()["detail"].startswith(f"{field}:")
    path = f"/api/v1/admin/users/{who.user_id}/limits"
    inner = body.get("user") or body.get("admin")
    if isinstance(inner, dict) and inner:
        answer = who.admin.request("PUT", path, json=inner)
        assert answer.status_code == 422
        assert field.split(".", 1)[1] in [error["field"] for error in answer.json()["errors"]]
    assert who.admin.get("/api/v1/admin/limits").json() == {"admin": UNLIMITED, "user": UNLIMITED}
    assert who.admin.get(path).json()["override"] == {}
    assert who.admin.request("PUT", path, content=b"{not json").status_code == 400


def test_a_send_reads_the_account_and_its_limits_as_they_are_now(platform: RunningPlatform) -> None:
    """What a send reads in one statement (the account, its override, the roles' defaults) follows
    every change at once."""
    who = people(platform)
    limits = platform.platform.limits

    def now() -> tuple[str, str, int | None, list[str] | None]:
        with platform.platform.sessions() as session:
            found = limits.account_now(session, who.user_id)
        assert found is not None
        user, effective = found
        return user.email, user.status, effective.requests_per_minute, effective.models

    assert now() == ("bob@example.com", "active", None, None)
    limits.set_role_defaults({"user": LimitValues(requests_per_minute=5)}, actor_id=None, address=None)
    assert now() == ("bob@example.com", "active", 5, None)
    limits.set_override(who.user_id, {"models": ["smollm2:*"]}, actor_id=None, address=None)
    assert now() == ("bob@example.com", "active", 5, ["smollm2:*"])
    limits.set_override(who.user_id, {"requests_per_minute": None}, actor_id=None, address=None)
    assert now() == ("bob@example.com", "active", None, None)
    limits.set_role_defaults({"user": LimitValues(requests_per_minute=7)}, actor_id=None, address=None)
    limits.clear_override(who.user_id, actor_id=None, address=None)
    assert now() == ("bob@example.com", "active", 7, None)
    who.admin.patch(f"/api/v1/admin/users/{who.user_id}", json={"status": "disabled"})
    assert now() == ("bob@example.com", "disabled", 7, None)
    with platform.platform.sessions() as session:
        assert limits.account_now(session, str(uuid.uuid4())) is None
