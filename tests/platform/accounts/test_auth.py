"""Sign-up, sign-in, tokens and sign-out over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from tests.platform.support import PASSWORD, RunningPlatform

USER_FIELDS = {"id", "email", "name", "role", "status", "created_at", "last_login_at", "has_password"}


def test_the_first_account_is_an_active_admin_and_the_next_waits_for_approval(
    platform: RunningPlatform,
) -> None:
    first = platform.register("Ada@Example.com", "Ada")
    assert set(first) == USER_FIELDS  # the user only: no tokens
    assert (first["email"], first["role"], first["status"]) == ("ada@example.com", "admin", "active")
    second = platform.register("bob@example.com", "Bob")
    assert (second["role"], second["status"]) == ("user", "pending")

    with platform.client() as http:
        refused = http.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert refused.status_code == 403
    assert "approval" in refused.json()["detail"]

    admin = platform.sign_in("ada@example.com")
    approved = admin.patch(f"/api/v1/admin/users/{second['id']}", json={"status": "active"})
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    bob = platform.sign_in("bob@example.com")
    me = bob.get("/api/v1/users/me").json()
    assert (me["id"], me["email"], me["name"], me["role"]) == (second["id"], "bob@example.com", "Bob", "user")


def test_login_gives_a_bearer_pair_with_a_key_id(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    session = platform.sign_in("ada@example.com")
    tokens = session.tokens
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("avr_")
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "HS256" and len(header["kid"]) == 16
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900 and claims["role"] == "admin"


def test_a_second_registration_of_an_address_is_a_conflict(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    with platform.client() as http:
        again = http.post(
            "/api/v1/auth/register", json={"email": "ADA@example.com", "password": PASSWORD, "name": "Ada 2"}
        )
    assert again.status_code == 409 and "exists" in again.json()["detail"]


def test_refresh_rotates_and_a_reused_token_ends_the_whole_session(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    session = platform.sign_in("ada@example.com")
    first = session.tokens["refresh_token"]
    with platform.client() as http:
        second = http.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert second.status_code == 200
        assert second.json()["refresh_token"] != first
        third = http.post("/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
        assert third.status_code == 200
        latest = third.json()
        assert http.get("/api/v1/users/me", headers=_bearer(latest)).status_code == 200

        reused = http.post("/api/v1/auth/refresh", json={"refresh_token": first})  # a stolen copy
        assert reused.status_code == 401 and "already used" in reused.json()["detail"]
        # The whole family is gone: the newest refresh token and its access token as well.
        assert (
            http.post("/api/v1/auth/refresh", json={"refresh_token": latest["refresh_token"]}).status_code
            == 401
        )
        assert http.get("/api/v1/users/me", headers=_bearer(latest)).status_code == 401
    admin = platform.sign_in("ada@example.com")
    events = admin.get("/api/v1/admin/audit", params={"action": "session.reuse_detected"}).json()["items"]
    assert len(events) == 1 and events[0]["subject_id"] == admin.get("/api/v1/users/me").json()["id"]


def test_refresh_refuses_garbage_and_unknown_tokens(sqlite_platform: RunningPlatform) -> None:
    with sqlite_platform.client() as http:
        unknown = http.post("/api/v1/auth/refresh", json={"refresh_token": "avr_nothing"})
        assert unknown.status_code == 401 and unknown.json()["detail"].startswith("invalid refresh token")
        none = http.post("/api/v1/auth/refresh")
        assert none.status_code == 401 and "no refresh token" in none.json()["detail"]
        long = http.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 5000})
        assert long.status_code == 422 and long.json()["errors"][0]["field"] == "refresh_token"


def test_logout_ends_the_session_and_its_access_token_at_once(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    session = platform.sign_in("ada@example.com")
    with platform.client() as http:
        assert (
            http.post(
                "/api/v1/auth/logout", json={"refresh_token": session.tokens["refresh_token"]}
            ).status_code
            == 204
        )
    assert session.get("/api/v1/users/me").status_code == 401
    with platform.client() as http:
        again = http.post("/api/v1/auth/refresh", json={"refresh_token": session.tokens["refresh_token"]})
    assert again.status_code == 401


def test_logout_with_the_access_token_alone(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    session = sqlite_platform.sign_in("ada@example.com")
    assert session.post("/api/v1/auth/logout").status_code == 204
    assert session.get("/api/v1/users/me").status_code == 401
    with sqlite_platform.client() as http:
        assert http.post("/api/v1/auth/logout").status_code == 401  # anonymous: nothing to end


def test_tokens_that_are_forged_expired_or_malformed_are_refused(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    session = sqlite_platform.sign_in("ada@example.com")
    claims = jwt.decode(session.tokens["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(session.tokens["access_token"])["kid"]
    forged = jwt.encode({**claims, "role": "admin"}, "not-the-key-" * 4, headers={"kid": kid})
    expired_claims = {**claims, "iat": claims["iat"] - 3600, "exp": claims["iat"] - 1800}
    signer = sqlite_platform.platform.accounts.signer
    key = signer._keys[kid]  # the real key: an expired token that is otherwise perfect
    expired = jwt.encode(expired_claims, key, headers={"kid": kid})
    with sqlite_platform.client() as http:
        for header, words in (
            (f"Bearer {forged}", "invalid"),
            (f"Bearer {expired}", "expired"),
            ("Bearer abc", "malformed"),
            ("Basic YTpi", "sign in"),
        ):
            answer = http.get("/api/v1/users/me", headers={"Authorization": header})
            assert answer.status_code == 401, header
            assert words in answer.json()["detail"]
            assert answer.headers["www-authenticate"] == "Bearer"


def test_cookie_sign_in_needs_the_csrf_echo(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    with sqlite_platform.client() as browser:
        login = browser.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": True}
        )
        assert login.status_code == 200
        assert "refresh_token" not in login.json()
        cookies = login.headers.get_list("set-cookie")
        refresh_cookie = next(c for c in cookies if c.startswith("avocado_refresh="))
        assert "HttpOnly" in refresh_cookie and "samesite=lax" in refresh_cookie.lower()
        assert "Path=/api/v1/auth" in refresh_cookie and "Secure" not in refresh_cookie  # plain http here
        csrf = browser.cookies["avocado_csrf"]

        # A cross-site form can send the cookie but cannot read the CSRF cookie to echo it.
        assert browser.post("/api/v1/auth/refresh").status_code == 403
        assert browser.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": "guess"}).status_code == 403
        refreshed = browser.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert refreshed.status_code == 200 and "refresh_token" not in refreshed.json()
        me = browser.get("/api/v1/users/me", headers=_bearer(refreshed.json()))
        assert me.status_code == 200

        assert browser.post("/api/v1/auth/logout").status_code == 403  # the cookie, without the echo
        # The refresh rotated the CSRF token: the old one no longer passes.
        rotated = browser.cookies["avocado_csrf"]
        assert rotated != csrf
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 403
        assert browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": rotated}).status_code == 204
        assert "avocado_refresh" not in browser.cookies
        assert browser.get("/api/v1/users/me", headers=_bearer(refreshed.json())).status_code == 401


def test_the_csrf_token_is_new_at_every_sign_in(sqlite_platform: RunningPlatform) -> None:
    """A CSRF cookie planted before sign-in (or leaked from an earlier session) is replaced."""
    sqlite_platform.register("ada@example.com")
    body = {"email": "ada@example.com", "password": PASSWORD, "cookie": True}
    with sqlite_platform.client() as browser:
        planted = {"Cookie": "avocado_csrf=planted"}
        first = _csrf_set(browser.post("/api/v1/auth/login", json=body, headers=planted))
        assert first not in ("planted", "")
        second = _csrf_set(
            browser.post("/api/v1/auth/login", json=body, headers={"Cookie": f"avocado_csrf={first}"})
        )
        assert second not in (first, "planted", "")


def _csrf_set(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    (cookie,) = [c for c in response.headers.get_list("set-cookie") if c.startswith("avocado_csrf=")]
    return cookie.split(";")[0].removeprefix("avocado_csrf=")


def test_a_dead_refresh_cookie_is_cleared_with_the_401(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    with platform.client() as browser:
        login = browser.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": True}
        )
        bearer = _bearer(login.json())
        assert browser.delete("/api/v1/users/me/sessions", headers=bearer).status_code == 204  # ends it
        csrf = browser.cookies["avocado_csrf"]
        dead = browser.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert dead.status_code == 401 and dead.json() == {"detail": "this session has ended: sign in again"}
        assert dead.headers["www-authenticate"] == "Bearer"
        cleared = dead.headers.get_list("set-cookie")
        assert any(c.startswith('avocado_refresh=""') and "Max-Age=0" in c for c in cleared), cleared
        assert "avocado_refresh" not in browser.cookies and "avocado_csrf" not in browser.cookies


def test_logout_with_a_refresh_token_in_the_body_clears_the_cookies_too(
    sqlite_platform: RunningPlatform,
) -> None:
    sqlite_platform.register("ada@example.com")
    with sqlite_platform.client() as browser:
        body = {"email": "ada@example.com", "password": PASSWORD, "cookie": True}
        assert browser.post("/api/v1/auth/login", json=body).status_code == 200
        with sqlite_platform.client() as api:
            token = api.post("/api/v1/auth/login", json={**body, "cookie": False}).json()["refresh_token"]
        assert browser.post("/api/v1/auth/logout", json={"refresh_token": token}).status_code == 204
        assert "avocado_refresh" not in browser.cookies and "avocado_csrf" not in browser.cookies


def test_cookies_are_secure_behind_https(tmp_path: Path) -> None:
    from tests.platform.support import platform_settings, running

    settings = platform_settings(
        tmp_path / "home",
        f"sqlite:///{tmp_path}/p.sqlite3",
        public_url="https://chat.example.com",
    )
    for started in running(settings):
        started.register("ada@example.com")
        with started.client() as http:
            login = http.post(
                "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": True}
            )
        assert all("Secure" in cookie for cookie in login.headers.get_list("set-cookie"))


def test_no_account_enumeration_at_sign_in(tmp_path: Path) -> None:
    """An unknown e-mail gets the same answer as a wrong password, after as long: a password is
    hashed either way (with costs high enough here that skipping the hash would show)."""
    from tests.platform.support import platform_settings, running

    settings = platform_settings(
        tmp_path / "home",
        f"sqlite:///{tmp_path}/p.sqlite3",
        argon2_memory=16384,
        argon2_time=2,
        address_free_attempts=100,
    )
    for started in running(settings):
        started.register("ada@example.com")
        known: list[float] = []
        unknown: list[float] = []
        with started.client() as http:
            for attempt in range(4):
                for email, times in (("ada@example.com", known), (f"nobody{attempt}@example.com", unknown)):
                    began = time.perf_counter()
                    answer = http.post(
                        "/api/v1/auth/login", json={"email": email, "password": "wrong password"}
                    )
                    times.append(time.perf_counter() - began)
                    assert answer.status_code == 401
                    assert answer.json() == {"detail": "wrong e-mail or password"}
        known.sort()
        unknown.sort()
        # Medians within a factor of two (without the dummy hash an unknown e-mail is ~20x faster).
        assert unknown[2] > known[2] / 2, (known, unknown)
        assert known[2] > unknown[2] / 2, (known, unknown)


def _bearer(tokens: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_http_client_sees_errors_as_detail(sqlite_platform: RunningPlatform) -> None:
    with httpx.Client(base_url=sqlite_platform.url) as http:
        missing = http.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "GET /api/v1/nothing-here not found"}
