"""Bad input gets a clear 4xx as {"detail": ...} naming the field, and nothing is stored."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.platform.support import PASSWORD, RunningPlatform, platform_settings, running


def test_bad_registrations_are_refused_and_store_nothing(sqlite_platform: RunningPlatform) -> None:
    admin_id = sqlite_platform.register("ada@example.com")["id"]
    good = {"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}
    cases = [
        ({**good, "email": "not-an-address"}, 422, "email"),
        ({**good, "email": "b" * 320 + "@example.com"}, 422, "email"),
        ({**good, "password": "short"}, 422, "password"),
        ({**good, "password": "p" * 257}, 422, "password"),
        ({**good, "password": "password123"}, 422, "password"),
        ({**good, "password": 12345678}, 422, "password"),
        ({**good, "name": "   "}, 422, "name"),
        ({**good, "name": "n" * 201}, 422, "name"),
        ({**good, "role": "admin"}, 422, "role"),  # no promoting oneself through extra fields
        ({"email": "bob@example.com"}, 422, "password"),
    ]
    with sqlite_platform.client() as http:
        for body, status, field in cases:
            answer = http.post("/api/v1/auth/register", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert field in {error["field"] for error in answer.json()["errors"]}, answer.text
            assert answer.json()["detail"].startswith(answer.json()["errors"][0]["field"])
        for raw in (b"{not json", b"[1, 2]", b'"a string"', b""):
            answer = http.post(
                "/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code in (400, 422), raw
            assert isinstance(answer.json()["detail"], str)
        huge = http.post(
            "/api/v1/auth/register", json={**good, "name": "x" * (2 << 20)}, headers={"X-Note": "too big"}
        )
        assert huge.status_code == 413 and huge.json()["detail"].startswith("request body too large")
    admin = sqlite_platform.sign_in("ada@example.com")
    listed = admin.get("/api/v1/admin/users").json()["items"]
    assert [user["id"] for user in listed] == [admin_id]


def test_a_weak_password_is_refused_when_it_is_the_address(sqlite_platform: RunningPlatform) -> None:
    with sqlite_platform.client() as http:
        answer = http.post(
            "/api/v1/auth/register",
            json={"email": "longname@example.com", "password": "longname", "name": "L"},
        )
    assert (
        answer.status_code == 422 and answer.json()["detail"] == "password: must not be your e-mail address"
    )


def test_tokens_signed_with_a_rotated_out_key_still_verify(tmp_path: Path) -> None:
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    database = f"sqlite:///{tmp_path}/p.sqlite3"
    tokens = {}
    for started in running(platform_settings(tmp_path / "home", database, signing_key=old)):
        started.register("ada@example.com")
        tokens = started.sign_in("ada@example.com").tokens
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    rotated = platform_settings(tmp_path / "home", database, signing_key=new, previous_signing_keys=[old])
    for started in running(rotated):
        with started.client() as http:
            assert http.get("/api/v1/users/me", headers=auth).status_code == 200
    for started in running(platform_settings(tmp_path / "home", database, signing_key=new)):
        with started.client() as http:
            answer = http.get("/api/v1/users/me", headers=auth)
            assert answer.status_code == 401 and "unknown key" in answer.json()["detail"]


def test_openapi_is_served_under_api_v1(sqlite_platform: RunningPlatform) -> None:
    with sqlite_platform.client() as http:
        spec = http.get("/api/v1/openapi.json").json()
        docs = http.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/users/me"):
        assert path in spec["paths"], path
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert {"401", "403", "422", "429"} <= set(login["responses"])
