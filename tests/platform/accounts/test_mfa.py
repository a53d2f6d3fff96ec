"""TOTP two-factor sign-in with recovery codes, on SQLite and PostgreSQL: enrol, confirm, sign in in
two steps (cookie too), codes good once, recovery codes one-time, turning it off, the audit trail,
and code attempts limited like sign-ins. Codes come from ``pyotp`` as an authenticator app makes them."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
from sqlalchemy import select

from avocado.platform.accounts.models import RecoveryCode
from tests.platform.support import PASSWORD, RunningPlatform, Session, platform_settings, running


def _enable(platform: RunningPlatform, session: Session) -> tuple[pyotp.TOTP, list[str]]:
    enrolled = session.post("/api/v1/users/me/mfa")
    assert enrolled.status_code == 201, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    confirmed = session.post("/api/v1/users/me/mfa/confirm", json={"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.text
    return totp, confirmed.json()["recovery_codes"]


def _next_code(totp: pyotp.TOTP) -> str:
    """The next step's code: accepted now (one step of drift is), and not used yet."""
    return totp.at(time.time() + totp.interval)


def _login(platform: RunningPlatform, http: httpx.Client, cookie: bool = False) -> httpx.Response:
    return http.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": cookie}
    )


def test_enrol_confirm_and_sign_in_in_two_steps(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    assert ada.get("/api/v1/users/me/mfa").json() == {
        "enabled": False,
        "pending": False,
        "recovery_codes_left": 0,
    }

    enrolled = ada.post("/api/v1/users/me/mfa").json()
    uri = urlparse(enrolled["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp" and "ada%40example.com" in uri.path
    assert parse_qs(uri.query)["secret"] == [enrolled["secret"]] and parse_qs(uri.query)["issuer"] == [
        "Avocado"
    ]
    assert ada.get("/api/v1/users/me/mfa").json()["pending"] is True
    with platform.client() as http:  # not on until confirmed: sign-in is one step still
        assert "access_token" in _login(platform, http).json()

    totp = pyotp.TOTP(enrolled["secret"])
    wrong = ada.post(
        "/api/v1/users/me/mfa/confirm", json={"code": "000000" if totp.now() != "000000" else "111111"}
    )
    assert wrong.status_code == 403 and wrong.json()["detail"].startswith("code:")
    codes = ada.post("/api/v1/users/me/mfa/confirm", json={"code": totp.now()}).json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert ada.get("/api/v1/users/me/mfa").json() == {
        "enabled": True,
        "pending": False,
        "recovery_codes_left": 10,
    }
    assert ada.post("/api/v1/users/me/mfa").status_code == 409  # on: no second enrolment

    with platform.client() as http:
        first = _login(platform, http).json()
        assert first["mfa_required"] is True and set(first) == {"mfa_required", "mfa_token", "expires_in"}
        as_bearer = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {first['mfa_token']}"})
        assert as_bearer.status_code == 401  # the second-step token opens nothing else

        bad = http.post("/api/v1/auth/mfa", json={"mfa_token": first["mfa_token"], "code": "12345x"})
        assert bad.status_code == 401
        code = _next_code(totp)
        tokens = http.post("/api/v1/auth/mfa", json={"mfa_token": first["mfa_token"], "code": code}).json()
        assert tokens["token_type"] == "bearer" and tokens["refresh_token"]
        assert (
            http.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            ).json()["email"]
            == "ada@example.com"
        )

        again = _login(platform, http).json()
        replay = http.post("/api/v1/auth/mfa", json={"mfa_token": again["mfa_token"], "code": code})
        assert replay.status_code == 401  # a code is good once
        forged = http.post("/api/v1/auth/mfa", json={"mfa_token": again["mfa_token"] + "x", "code": code})
        assert forged.status_code == 401 and "sign in again" in forged.json()["detail"]


def test_recovery_codes_are_one_time_and_stored_hashed(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    _, codes = _enable(platform, ada)
    with platform.platform.mfa._sessions() as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)
    with platform.client() as http:
        challenge = _login(platform, http).json()["mfa_token"]
        typed = codes[0].upper().replace("-", " ")  # as read off paper
        assert http.post("/api/v1/auth/mfa", json={"mfa_token": challenge, "code": typed}).status_code == 200
        challenge = _login(platform, http).json()["mfa_token"]
        assert (
            http.post("/api/v1/auth/mfa", json={"mfa_token": challenge, "code": codes[0]}).status_code == 401
        )
    assert ada.get("/api/v1/users/me/mfa").json()["recovery_codes_left"] == 9


def test_cookie_sign_in_with_two_factor(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    totp, _ = _enable(platform, platform.sign_in("ada@example.com"))
    with platform.client() as http:
        challenge = _login(platform, http, cookie=True).json()
        assert "avocado_refresh" not in http.cookies
        done = http.post(
            "/api/v1/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": _next_code(totp)}
        )
        assert done.status_code == 200 and "refresh_token" not in done.json()
        assert http.cookies.get("avocado_refresh") and http.cookies.get("avocado_csrf")
        refreshed = http.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": http.cookies["avocado_csrf"]})
        assert refreshed.status_code == 200, refreshed.text


def test_turning_it_off_needs_a_code_or_the_password_and_is_audited(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    totp, codes = _enable(platform, ada)
    assert ada.post("/api/v1/users/me/mfa/disable", json={}).status_code == 422
    assert ada.post("/api/v1/users/me/mfa/disable", json={"password": "not the password"}).status_code == 403
    assert ada.post("/api/v1/users/me/mfa/disable", json={"code": "999999x"}).status_code == 403
    new_codes = ada.post("/api/v1/users/me/mfa/recovery-codes", json={"code": _next_code(totp)}).json()
    assert set(new_codes["recovery_codes"]).isdisjoint(codes)
    assert ada.post("/api/v1/users/me/mfa/disable", json={"code": codes[1]}).status_code == 403  # replaced
    assert ada.post("/api/v1/users/me/mfa/disable", json={"password": PASSWORD}).status_code == 204
    assert ada.get("/api/v1/users/me/mfa").json()["enabled"] is False
    with platform.client() as http:
        assert "access_token" in _login(platform, http).json()

    totp, codes = _enable(platform, ada)  # and again, turned off with a recovery code this time
    assert ada.post("/api/v1/users/me/mfa/disable", json={"code": codes[0]}).status_code == 204
    actions = [
        event["action"] for event in ada.get("/api/v1/admin/audit", params={"limit": 200}).json()["items"]
    ]
    for action in ("mfa.enrolled", "mfa.enabled", "mfa.failed", "mfa.disabled", "mfa.recovery_code_used"):
        assert action in actions, action
    assert "mfa.recovery_codes_replaced" in actions


def test_code_attempts_are_limited_like_sign_ins(tmp_path: Path) -> None:
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", login_free_attempts=2, address_free_attempts=50
    )
    for started in running(settings):
        started.register("ada@example.com")
        totp, _ = _enable(started, started.sign_in("ada@example.com"))
        with started.client() as http:
            challenge = _login(started, http).json()["mfa_token"]
            for _ in range(2):  # the free ones
                wrong = http.post("/api/v1/auth/mfa", json={"mfa_token": challenge, "code": "123456x"})
                assert wrong.status_code == 401
            code = _next_code(totp)
            limited = http.post("/api/v1/auth/mfa", json={"mfa_token": challenge, "code": code})
            assert limited.status_code == 429  # refused before the code is even checked
            time.sleep(int(limited.headers["Retry-After"]) + 0.1)
            assert (
                http.post("/api/v1/auth/mfa", json={"mfa_token": challenge, "code": code}).status_code == 200
            )


def test_an_admin_turns_off_a_users_two_factor(platform: RunningPlatform) -> None:
    platform.register("root@example.com")
    root = platform.sign_in("root@example.com")
    ada_id = platform.register("ada@example.com")["id"]
    root.patch(f"/api/v1/admin/users/{ada_id}", json={"status": "active"})
    ada = platform.sign_in("ada@example.com")
    _enable(platform, ada)
    assert ada.delete(f"/api/v1/admin/users/{ada_id}/mfa").status_code == 403  # not an admin
    with platform.client() as http:
        assert _login(platform, http).json()["mfa_required"] is True
        assert root.delete(f"/api/v1/admin/users/{ada_id}/mfa").status_code == 204
        assert "access_token" in _login(platform, http).json()  # the password alone again
    assert ada.get("/api/v1/users/me/mfa").json() == {
        "enabled": False,
        "pending": False,
        "recovery_codes_left": 0,
    }
    reset = root.get("/api/v1/admin/audit", params={"action": "mfa.reset"}).json()["items"]
    assert [(e["subject_id"], e["detail"]["was_on"]) for e in reset] == [(ada_id, True)]
    assert root.delete("/api/v1/admin/users/00000000-0000-0000-0000-000000000000/mfa").status_code == 404
