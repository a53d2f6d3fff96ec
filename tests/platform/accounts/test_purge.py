"""Ended sessions, old rotated refresh tokens and spent reset tokens are deleted; nothing still in use is."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from avocado.db.base import utcnow
from avocado.platform.accounts.models import AuthSession, PasswordReset, RefreshToken
from avocado.platform.accounts.tokens import digest
from tests.platform.support import PASSWORD, RunningPlatform, Session, platform_settings, running

DAYS_AGO = utcnow() - timedelta(days=2)


def _session_id(session: Session) -> str:
    items = session.get("/api/v1/users/me/sessions").json()["items"]
    return str(next(item["id"] for item in items if item["current"]))


def _change(platform: RunningPlatform, statement: Any) -> None:
    with platform.platform.accounts._sessions.begin() as db:
        db.execute(statement)


def _count(platform: RunningPlatform, model: Any) -> int:
    with platform.platform.accounts._sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _refresh(platform: RunningPlatform, token: str) -> Any:
    with platform.client() as http:
        return http.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_purge_deletes_what_can_no_longer_be_used(platform: RunningPlatform) -> None:
    admin_id = platform.register("ada@example.com")["id"]
    bob_id = platform.register("bob@example.com")["id"]
    live = platform.sign_in("ada@example.com")
    revoked_long_ago, expired, revoked_now = (platform.sign_in("ada@example.com") for _ in range(3))
    expired_id, revoked_now_id = _session_id(expired), _session_id(revoked_now)
    assert live.delete(f"/api/v1/users/me/sessions/{_session_id(revoked_long_ago)}").status_code == 204
    _change(
        platform, update(AuthSession).where(AuthSession.revoked_at.is_not(None)).values(revoked_at=DAYS_AGO)
    )
    _change(platform, update(AuthSession).where(AuthSession.id == expired_id).values(expires_at=DAYS_AGO))
    assert live.delete(f"/api/v1/users/me/sessions/{revoked_now_id}").status_code == 204

    # The live session rotates twice: its first token was spent long ago, its second a moment ago.
    first = live.tokens["refresh_token"]
    second = _refresh(platform, first).json()["refresh_token"]
    third = _refresh(platform, second).json()["refresh_token"]
    old_rotation = utcnow() - platform.platform.accounts.refresh_ttl - timedelta(hours=1)
    _change(
        platform,
        update(RefreshToken).where(RefreshToken.token_hash == digest(first)).values(rotated_at=old_rotation),
    )

    # Reset links: one used (by bob), one expired, one still good.
    used = live.post(f"/api/v1/admin/users/{bob_id}/reset-link").json()["url"].split("#token=")[1]
    with platform.client() as http:
        assert (
            http.post(
                "/api/v1/auth/password-reset", json={"token": used, "password": "bob's new one"}
            ).status_code
            == 204
        )
    live.post(f"/api/v1/admin/users/{admin_id}/reset-link")
    good = live.post(f"/api/v1/admin/users/{admin_id}/reset-link").json()["url"].split("#token=")[1]
    _change(
        platform,
        update(PasswordReset)
        .where(PasswordReset.token_hash != digest(good), PasswordReset.used_at.is_(None))
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    gone = platform.platform.accounts.purge()
    assert gone == {"sessions": 2, "refresh_tokens": 3, "password_resets": 2}
    assert platform.platform.accounts.purge() == {"sessions": 0, "refresh_tokens": 0, "password_resets": 0}
    assert _count(platform, PasswordReset) == 1
    assert _count(platform, AuthSession) == 2  # the live one, and the one revoked a moment ago

    # What is still in use works: the good reset link, the live session's newest token; and the
    # recently rotated token still gives away a thief (the session ends).
    assert _refresh(platform, third).status_code == 200
    reused = _refresh(platform, second)
    assert reused.status_code == 401 and "already used" in reused.json()["detail"]
    with platform.client() as http:
        assert (
            http.post(
                "/api/v1/auth/password-reset", json={"token": good, "password": "ada's new one"}
            ).status_code
            == 204
        )


def test_a_starting_platform_purges(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3")
    for started in running(settings):
        started.register("ada@example.com")
        admin = started.sign_in("ada@example.com", PASSWORD)
        assert admin.delete("/api/v1/users/me/sessions").status_code == 204
        _change(started, update(AuthSession).values(revoked_at=DAYS_AGO))
    for restarted in running(settings):
        deadline = time.monotonic() + 5
        while _count(restarted, AuthSession):
            assert time.monotonic() < deadline, "the ended session is still there"
            time.sleep(0.05)
