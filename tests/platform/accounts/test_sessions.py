"""My sessions, passwords, reset links, route guards and sign-in limits."""

from __future__ import annotations

import functools
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from avocado.db.base import utcnow
from avocado.platform.accounts.models import PasswordReset
from tests.platform.support import PASSWORD, RunningPlatform, platform_settings, running


def test_my_sessions_list_and_revoke_and_sign_out_everywhere(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    laptop = platform.sign_in(
        "ada@example.com", **{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    )
    phone = platform.sign_in("ada@example.com", **{"User-Agent": "Mozilla/5.0 (iPhone) Safari/604.1"})
    listed = laptop.get("/api/v1/users/me/sessions").json()
    assert listed["next_cursor"] is None
    devices = {item["device"]: item for item in listed["items"]}
    assert set(devices) == {"Firefox on Linux", "Safari on iOS"}
    assert devices["Firefox on Linux"]["current"] and not devices["Safari on iOS"]["current"]
    assert devices["Safari on iOS"]["address"] == "127.0.0.1"

    first_page = laptop.get("/api/v1/users/me/sessions", params={"limit": 1}).json()
    second_page = laptop.get(
        "/api/v1/users/me/sessions", params={"limit": 1, "cursor": first_page["next_cursor"]}
    ).json()
    assert {first_page["items"][0]["id"], second_page["items"][0]["id"]} == {
        d["id"] for d in devices.values()
    }
    assert second_page["next_cursor"] is None

    assert laptop.delete(f"/api/v1/users/me/sessions/{devices['Safari on iOS']['id']}").status_code == 204
    assert phone.get("/api/v1/users/me").status_code == 401
    assert laptop.get("/api/v1/users/me").status_code == 200

    third = platform.sign_in("ada@example.com")
    assert laptop.delete("/api/v1/users/me/sessions").status_code == 204  # everywhere, this one too
    assert laptop.get("/api/v1/users/me").status_code == 401
    assert third.get("/api/v1/users/me").status_code == 401


def test_another_users_session_is_not_found(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    bob_id = sqlite_platform.register("bob@example.com")["id"]
    ada = sqlite_platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = sqlite_platform.sign_in("bob@example.com")
    bobs_session = bob.get("/api/v1/users/me/sessions").json()["items"][0]["id"]
    answer = ada.delete(f"/api/v1/users/me/sessions/{bobs_session}")
    assert answer.status_code == 404 and answer.json() == {"detail": "no such session"}
    assert bob.get("/api/v1/users/me").status_code == 200
    assert ada.get("/api/v1/users/me/sessions", params={"cursor": "garbage!"}).status_code == 422


def test_change_password_needs_the_current_one_and_ends_the_other_sessions(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    here = platform.sign_in("ada@example.com")
    elsewhere = platform.sign_in("ada@example.com")
    wrong = here.post(
        "/api/v1/users/me/password", json={"current_password": "nope", "new_password": "a new secret"}
    )
    assert wrong.status_code == 403 and "current_password" in wrong.json()["detail"]
    weak = here.post(
        "/api/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "password"}
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "new_password"
    changed = here.post(
        "/api/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "a new secret"}
    )
    assert changed.status_code == 204
    assert here.get("/api/v1/users/me").status_code == 200
    assert elsewhere.get("/api/v1/users/me").status_code == 401
    with platform.client() as http:
        old = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        assert old.status_code == 401
    platform.sign_in("ada@example.com", "a new secret")


def test_a_reset_link_works_once_and_ends_every_session(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    bob_id = platform.register("bob@example.com")["id"]
    admin = platform.sign_in("ada@example.com")
    admin.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = platform.sign_in("bob@example.com")
    link = admin.post(f"/api/v1/admin/users/{bob_id}/reset-link").json()
    assert link["url"].startswith(f"{platform.settings.local_url}/reset-password#token=avp_")
    token = link["url"].split("#token=")[1]
    with platform.client() as http:
        weak = http.post("/api/v1/auth/password-reset", json={"token": token, "password": "bob@example.com"})
        assert weak.status_code == 422  # the e-mail as a password: refused, the link still good
        assert (
            http.post(
                "/api/v1/auth/password-reset", json={"token": token, "password": "brand new pass"}
            ).status_code
            == 204
        )
        again = http.post("/api/v1/auth/password-reset", json={"token": token, "password": "another new one"})
        assert again.status_code == 400 and "already used" in again.json()["detail"]
    assert bob.get("/api/v1/users/me").status_code == 401
    platform.sign_in("bob@example.com", "brand new pass")


def test_an_expired_reset_link_is_refused(sqlite_platform: RunningPlatform) -> None:
    admin_id = sqlite_platform.register("ada@example.com")["id"]
    admin = sqlite_platform.sign_in("ada@example.com")
    token = admin.post(f"/api/v1/admin/users/{admin_id}/reset-link").json()["url"].split("#token=")[1]
    sessions = sqlite_platform.platform.accounts._sessions
    with sessions.begin() as session:
        session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
    with sqlite_platform.client() as http:
        answer = http.post("/api/v1/auth/password-reset", json={"token": token, "password": "brand new pass"})
    assert answer.status_code == 400 and "expired" in answer.json()["detail"]


def test_route_guards(platform: RunningPlatform) -> None:
    admin_id = platform.register("ada@example.com")["id"]
    bob_id = platform.register("bob@example.com")["id"]
    admin = platform.sign_in("ada@example.com")
    admin.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = platform.sign_in("bob@example.com")
    admin_routes = [
        ("GET", "/api/v1/admin/users"),
        ("POST", "/api/v1/admin/users"),
        ("GET", f"/api/v1/admin/users/{admin_id}"),
        ("PATCH", f"/api/v1/admin/users/{admin_id}"),
        ("POST", f"/api/v1/admin/users/{admin_id}/reset-link"),
        ("DELETE", f"/api/v1/admin/users/{admin_id}/sessions"),
        ("GET", "/api/v1/admin/audit"),
        ("GET", "/api/v1/admin/settings"),
        ("PATCH", "/api/v1/admin/settings"),
    ]
    user_routes = [
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("POST", "/api/v1/users/me/password"),
        ("GET", "/api/v1/users/me/sessions"),
        ("DELETE", "/api/v1/users/me/sessions"),
        ("DELETE", f"/api/v1/users/me/sessions/{admin_id}"),
        ("GET", "/api/v1/models"),
    ]
    with platform.client() as anonymous:
        for method, path in admin_routes + user_routes:
            answer = anonymous.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert "detail" in answer.json()
    for method, path in admin_routes:
        answer = bob.http.request(method, path, headers=bob.auth, json={})
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json() == {"detail": "administrators only"}
    assert bob.get("/api/v1/users/me").json()["role"] == "user"  # nothing above changed bob
    assert admin.get(f"/api/v1/admin/users/{admin_id}").json()["role"] == "admin"


def test_the_last_admin_cannot_be_demoted_or_disabled(platform: RunningPlatform) -> None:
    admin_id = platform.register("ada@example.com")["id"]
    bob_id = platform.register("bob@example.com")["id"]
    admin = platform.sign_in("ada@example.com")
    for change in ({"role": "user"}, {"status": "disabled"}, {"status": "pending"}):
        answer = admin.patch(f"/api/v1/admin/users/{admin_id}", json=change)
        assert answer.status_code == 409 and "last active administrator" in answer.json()["detail"]
    assert (
        admin.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active", "role": "admin"}).status_code
        == 200
    )
    demoted = admin.patch(f"/api/v1/admin/users/{admin_id}", json={"role": "user"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "user"
    # The role is read from the database on every admin request, not from the token.
    assert admin.get("/api/v1/admin/users").status_code == 403


def test_disabling_an_account_ends_its_sessions_and_says_why_at_sign_in(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    bob_id = platform.register("bob@example.com")["id"]
    admin = platform.sign_in("ada@example.com")
    admin.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = platform.sign_in("bob@example.com")
    assert admin.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "disabled"}).status_code == 200
    assert bob.get("/api/v1/users/me").status_code == 401
    with platform.client() as http:
        refused = http.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        assert refused.status_code == 403 and "disabled" in refused.json()["detail"]
        # A wrong password says nothing about the account's status.
        wrong = http.post(
            "/api/v1/auth/login", json={"email": "bob@example.com", "password": "not it at all"}
        )
        assert wrong.status_code == 401
    audit = admin.get("/api/v1/admin/audit", params={"subject_id": bob_id}).json()["items"]
    actions = [event["action"] for event in audit]
    assert actions[:2] == ["signin.failed", "signin.refused"]
    assert "user.status_changed" in actions


def test_failed_sign_ins_are_delayed_per_account_with_retry_after(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", login_free_attempts=3)
    for started in running(settings):
        started.register("ada@example.com")
        with started.client() as http:

            def attempt(password: str, email: str = "ada@example.com") -> int:
                return http.post(
                    "/api/v1/auth/login", json={"email": email, "password": password}
                ).status_code

            assert [attempt("wrong one!") for _ in range(3)] == [401, 401, 401]
            blocked = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert blocked.status_code == 429  # even the right password waits out the delay
            assert blocked.headers["retry-after"] == "1" and "try again" in blocked.json()["detail"]
            # The same rules for an e-mail that has no account: the limits reveal nothing.
            assert [attempt("wrong one!", "ghost@example.com") for _ in range(4)] == [401, 401, 401, 429]
            time.sleep(1.05)
            assert attempt("wrong one!") == 401  # the 4th failure: the next wait doubles
            doubled = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
            assert doubled.status_code == 429 and doubled.headers["retry-after"] == "2"
            time.sleep(2.05)
            assert attempt(PASSWORD) == 200
            assert attempt("wrong one!") == 401  # a success cleared the account's count
            assert attempt("wrong one!") == 401


def test_failed_sign_ins_are_delayed_per_address(tmp_path: Path) -> None:
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", address_free_attempts=4
    )
    for started in running(settings):
        with started.client() as http:
            codes = [
                http.post(
                    "/api/v1/auth/login", json={"email": f"u{i}@example.com", "password": "x" * 9}
                ).status_code
                for i in range(5)
            ]
        assert codes == [401, 401, 401, 401, 429]


@pytest.mark.parametrize("redis_url", [None, "redis://127.0.0.1:6379/0"], ids=["memory", "redis"])
def test_parallel_wrong_passwords_cannot_outrun_the_limit(tmp_path: Path, redis_url: str | None) -> None:
    """Each attempt counts before its password is checked: a burst of parallel guesses gets the free
    ones, then 429s (counting after the check let every guess of the burst through)."""
    settings = platform_settings(
        tmp_path / "home",
        f"sqlite:///{tmp_path}/p.sqlite3",
        login_free_attempts=3,
        address_free_attempts=10_000,  # the account's limit is the one under test
        trusted_proxies="127.0.0.1",  # each run guesses from an address of its own (Redis is shared)
        argon2_memory=16384,  # a real hash takes a while: the window parallel guesses used
        argon2_time=2,
        redis_url=redis_url,
    )
    for started in running(settings):
        email = f"ada-{secrets.token_hex(4)}@example.com"  # Redis is shared with other test runs
        started.register(email)
        together = threading.Barrier(8)
        address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(functools.partial(_guess, started, email, address, together), range(8)))
        assert codes == [401] * 3 + [429] * 5
        with started.client() as http:  # the right password, during the delay, waits as well
            right = http.post(
                "/api/v1/auth/login",
                json={"email": email, "password": PASSWORD},
                headers={"X-Forwarded-For": address},
            )
        assert right.status_code == 429


def _guess(
    platform: RunningPlatform, email: str, address: str, together: threading.Barrier, number: int
) -> int:
    with platform.client(headers={"X-Forwarded-For": address}) as http:
        http.get("/api/v1/health")  # connected before the barrier: the guesses leave together
        together.wait()
        body = {"email": email, "password": f"wrong guess {number}"}
        return http.post("/api/v1/auth/login", json=body).status_code
