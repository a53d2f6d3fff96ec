"""Two platform processes on one PostgreSQL (and Redis): a session ended on one stops on the other.

Without Redis the other replica learns of it from its poll of the database (``revocation_poll``);
with Redis, from the channel at once (the poll is set to a minute here, so it cannot be what
carries the news). Sign-in limits are shared through Redis as well.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from tests.db.support import empty_public_schema
from tests.platform.support import PASSWORD, RunningPlatform, Session, platform_settings, start_platform

REDIS = "redis://127.0.0.1:6379/0"


def _pair(tmp_path: Path, database: str, **overrides: object) -> tuple[RunningPlatform, RunningPlatform]:
    key = secrets.token_urlsafe(32)  # replicas share their signing key, as deployments do
    first = start_platform(platform_settings(tmp_path / "a", database, signing_key=key, **overrides))
    second = start_platform(platform_settings(tmp_path / "b", database, signing_key=key, **overrides))
    return first, second


def _stops_within(session: Session, seconds: float) -> float:
    began = time.monotonic()
    while session.get("/api/v1/users/me").status_code == 200:
        assert time.monotonic() - began < seconds, f"still signed in after {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - began


def test_a_revocation_reaches_the_other_replica_through_the_database(
    postgres_database: str, tmp_path: Path
) -> None:
    empty_public_schema(postgres_database)
    first, second = _pair(tmp_path, postgres_database, revocation_poll="0.3s")
    try:
        first.register("ada@example.com")
        on_first = first.sign_in("ada@example.com")
        on_second = Session(second.client(), on_first.tokens)
        assert on_second.get("/api/v1/users/me").status_code == 200
        second_login = second.sign_in("ada@example.com")
        assert second_login.delete(f"/api/v1/users/me/sessions/{_session_id(on_first)}").status_code == 204
        _stops_within(on_first, 3.0)
    finally:
        first.stop()
        second.stop()


def test_with_redis_a_revocation_reaches_the_other_replica_at_once(
    postgres_database: str, tmp_path: Path
) -> None:
    empty_public_schema(postgres_database)
    first, second = _pair(tmp_path, postgres_database, revocation_poll="60s", redis_url=REDIS)
    try:
        first.register("ada@example.com")
        on_first = first.sign_in("ada@example.com")
        assert Session(second.client(), on_first.tokens).get("/api/v1/users/me").status_code == 200
        with second.client() as http:
            ended = http.post("/api/v1/auth/logout", json={"refresh_token": on_first.tokens["refresh_token"]})
        assert ended.status_code == 204
        assert _stops_within(on_first, 2.0) < 2.0
    finally:
        first.stop()
        second.stop()


def test_with_redis_sign_in_limits_are_shared(postgres_database: str, tmp_path: Path) -> None:
    empty_public_schema(postgres_database)
    # Redis is shared with other test runs: an account of this run's own, and no address limit (the
    # failures from 127.0.0.1 would otherwise add up over runs within the hour they are kept).
    first, second = _pair(
        tmp_path, postgres_database, redis_url=REDIS, login_free_attempts=2, address_free_attempts=10_000
    )
    email = f"ada-{secrets.token_hex(4)}@example.com"
    try:
        first.register(email)
        codes = []
        for replica in (first, second, first):
            with replica.client() as http:
                codes.append(
                    http.post("/api/v1/auth/login", json={"email": email, "password": "not it!!"}).status_code
                )
        assert codes == [401, 401, 429]
        with second.client() as http:
            assert (
                http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code
                == 429
            )
    finally:
        first.stop()
        second.stop()


def _session_id(session: Session) -> str:
    items = session.get("/api/v1/users/me/sessions").json()["items"]
    return str(next(item["id"] for item in items if item["current"]))
