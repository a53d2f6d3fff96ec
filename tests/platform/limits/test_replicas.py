"""Two platform processes on one PostgreSQL and Redis hold each user to one set of limits: the
requests of the minute, the requests running and the tokens of the day add up across both."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

from tests.db.support import empty_public_schema
from tests.gateway.support import start_standin, wait_until
from tests.platform.limits.support import People, chat, people
from tests.platform.support import RunningPlatform, Session, platform_settings, start_platform

REDIS = "redis://127.0.0.1:6379/0"
STANDIN = "standin:1"


def _pair(tmp_path: Path, database: str, upstream: str) -> Iterator[tuple[RunningPlatform, RunningPlatform]]:
    key = secrets.token_urlsafe(32)
    settings = {"signing_key": key, "redis_url": REDIS, "upstream_url": upstream}
    first = start_platform(platform_settings(tmp_path / "a", database, **settings))
    second = start_platform(platform_settings(tmp_path / "b", database, **settings))
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def _role(who: People, **limits: object) -> None:
    assert who.admin.request("PUT", "/api/v1/admin/limits", json={"user": limits}).status_code == 200


def _usage_on(platform: RunningPlatform, who: People) -> dict[str, int]:
    """The user's usage as this replica reads it."""
    with platform.client() as http:
        usage: dict[str, int] = Session(http, who.user.tokens).get("/api/v1/users/me/limits").json()["usage"]
    return usage


def test_requests_per_minute_and_tokens_are_shared(postgres_database: str, tmp_path: Path) -> None:
    empty_public_schema(postgres_database)
    standin = start_standin(model=STANDIN)  # each answer reports 10 tokens used
    try:
        for first, second in _pair(tmp_path, postgres_database, standin.url):
            who = people(first)  # users are fresh ids: counts left in Redis by other runs do not meet them
            _role(who, requests_per_minute=3)
            assert [chat(p, who.key, STANDIN).status_code for p in (first, first, second)] == [200] * 3
            for platform in (first, second):
                refused = chat(platform, who.key, STANDIN)
                assert refused.status_code == 429 and 50 <= int(refused.headers["retry-after"]) <= 60
            assert _usage_on(second, who)["requests_last_minute"] == 3
            assert _usage_on(second, who)["tokens_today"] == 30

            # Limits set on one replica apply on the other (the database), tokens add up (Redis)
            _role(who, tokens_per_day=45)
            assert chat(second, who.key, STANDIN).status_code == 200  # 40 used: under 45
            assert chat(first, who.key, STANDIN).status_code == 200  # 50 used
            refused = chat(first, who.key, STANDIN)
            assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
            assert chat(second, who.key, STANDIN).status_code == 429
            assert _usage_on(first, who)["tokens_today"] == 50
    finally:
        standin.stop()


def test_concurrent_requests_are_shared(postgres_database: str, tmp_path: Path) -> None:
    empty_public_schema(postgres_database)
    stalling = start_standin(model=STANDIN, mode="stall")
    try:
        for first, second in _pair(tmp_path, postgres_database, stalling.url):
            who = people(first)
            _role(who, concurrent_requests=1)
            body = {"model": STANDIN, "messages": [{"role": "user", "content": "hi"}], "stream": True}
            headers = {"Authorization": f"Bearer {who.key}"}
            with (
                first.client() as http,
                http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as held,
            ):
                assert held.status_code == 200
                lines = held.iter_lines()
                assert next(lines).startswith("data: ")
                refused = chat(second, who.key, STANDIN)
                assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
                assert _usage_on(second, who)["concurrent_requests"] == 1
            wait_until(
                lambda on=second, them=who: _usage_on(on, them)["concurrent_requests"] == 0,
                message="slot freed",
            )
            with (
                second.client() as http,
                http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as again,
            ):
                assert again.status_code == 200
    finally:
        stalling.stop()
