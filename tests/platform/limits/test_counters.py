"""The counters on their own, in memory and in Redis, on a clock the test moves: the sliding
minute, the UTC day, a running request's lease (a replica that died frees its slots), and an
:class:`Admission` used as ``async with`` as the chat domain will use it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from avocado.platform.accounts.service import Client
from avocado.platform.build import open_services
from avocado.platform.limits.counters import DAY, Counters, MemoryCounters, Quota, RedisCounters
from avocado.platform.limits.errors import LimitExceeded, ModelHidden
from avocado.platform.limits.schemas import LimitValues
from avocado.platform.limits.service import model_visible
from tests.platform.support import PASSWORD, platform_settings

REDIS = "redis://127.0.0.1:6379/0"
START = 1_800_000_000.0 - 1_800_000_000.0 % DAY + 3600.0  # 01:00 UTC on some day


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


Make = Callable[[Clock], Counters]


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest) -> Make:
    if request.param == "memory":
        return lambda clock: MemoryCounters(clock=clock)
    return lambda clock: RedisCounters(REDIS, lease_ttl=30.0, clock=clock)


def _run(make: Make, scenario: Callable[[Counters, Clock, str], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = Clock()
        counters = make(clock)
        try:
            await scenario(counters, clock, str(uuid.uuid4()))  # a fresh user: Redis is shared
        finally:
            await counters.aclose()

    asyncio.run(main())


def test_the_minute_slides(make: Make) -> None:
    async def scenario(counters: Counters, clock: Clock, user: str) -> None:
        quota = Quota(requests_per_minute=2)
        assert await counters.admit(user, quota, "a") is None
        clock.now += 20
        assert await counters.admit(user, quota, "b") is None
        clock.now += 10
        refusal = await counters.admit(user, quota, "c")
        assert refusal is not None and refusal.reason == "requests_per_minute" and refusal.limit == 2
        assert refusal.retry_after == pytest.approx(30.0)  # the first one leaves the window then
        clock.now += 30.5
        assert await counters.admit(user, quota, "c") is None
        assert (await counters.usage(user)).requests_last_minute == 2

    _run(make, scenario)


def test_tokens_count_for_the_utc_day(make: Make) -> None:
    async def scenario(counters: Counters, clock: Clock, user: str) -> None:
        quota = Quota(tokens_per_day=100)
        await counters.add_tokens(user, 60)
        assert await counters.admit(user, quota, "a") is None
        await counters.add_tokens(user, 40)
        refusal = await counters.admit(user, quota, "b")
        assert refusal is not None and refusal.reason == "tokens_per_day"
        assert refusal.retry_after == pytest.approx(DAY - 3600.0)
        assert (await counters.usage(user)).tokens_today == 100
        clock.now += DAY - 3600.0  # midnight UTC
        assert (await counters.usage(user)).tokens_today == 0
        assert await counters.admit(user, quota, "b") is None

    _run(make, scenario)


def test_running_requests_hold_a_slot_until_released(make: Make) -> None:
    async def scenario(counters: Counters, clock: Clock, user: str) -> None:
        quota = Quota(concurrent_requests=2)
        assert await counters.admit(user, quota, "a") is None
        assert await counters.admit(user, quota, "b") is None
        refusal = await counters.admit(user, quota, "c")
        assert refusal is not None and refusal.reason == "concurrent_requests"
        await counters.release(user, "a")
        await counters.release(user, "a")  # twice changes nothing
        assert (await counters.usage(user)).concurrent_requests == 1
        assert await counters.admit(user, quota, "c") is None
        assert (await counters.usage(user)).concurrent_requests == 2

    _run(make, scenario)


def test_in_redis_a_lease_not_renewed_expires() -> None:
    async def scenario(counters: Counters, clock: Clock, user: str) -> None:
        quota = Quota(concurrent_requests=1)
        assert await counters.admit(user, quota, "a") is None
        clock.now += 20
        await counters.renew(user, "a")
        clock.now += 20  # 40 s after it began, 20 s after its renewal: still held
        assert (await counters.admit(user, quota, "b")) is not None
        clock.now += 11  # its holder died: nobody renewed it
        assert await counters.admit(user, quota, "b") is None

    _run(lambda clock: RedisCounters(REDIS, lease_ttl=30.0, clock=clock), scenario)


def test_model_patterns() -> None:
    assert model_visible("anything:1b", None)
    assert not model_visible("smollm2:135m", [])
    assert model_visible("smollm2:135m", ["gemma3:*", "smollm2:*"])
    assert not model_visible("smollm2:135m", ["smollm2"])
    assert model_visible("smollm2", ["smollm2:latest"])  # no tag: Ollama's :latest
    assert model_visible("hf.co/org/repo:Q4_K_M", ["hf.co/org/*"])
    assert not model_visible("SmolLM2:135m", ["smollm2:*"])  # names are case-sensitive


def test_an_admission_is_an_async_context(tmp_path: Path) -> None:
    built = open_services(platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3"))
    platform = built.platform
    try:
        user = platform.accounts.register("ada@example.com", PASSWORD, "Ada", Client(address="127.0.0.1"))
        limits = platform.limits
        limits.set_role_defaults(
            {"admin": LimitValues(concurrent_requests=1, models=["smollm2:*"])}, actor_id=None, address=None
        )

        async def main() -> None:
            async with limits.admit(user, "smollm2:135m") as admission:
                await admission.record_tokens(12)
                with pytest.raises(LimitExceeded) as busy:
                    await limits.admit(user, "smollm2:135m").acquire()
                assert busy.value.status == 429 and busy.value.headers == {"Retry-After": "1"}
            async with limits.admit(user, "smollm2"):  # free again; no tag is :latest
                pass
            with pytest.raises(ModelHidden) as hidden:
                await limits.admit(user, "gemma3:270m").acquire()
            assert hidden.value.status == 404
            used, _ = await limits.usage(user)
            assert (used.requests_last_minute, used.concurrent_requests, used.tokens_today) == (2, 0, 12)

        asyncio.run(main())
    finally:
        asyncio.run(platform.limits.aclose())
        built.engine.dispose()
