"""Per-key limits hold, in one process and across replicas sharing a real Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
from redis.asyncio import Redis

from avocado.gateway.hooks import Refused
from avocado.gateway.limits import KeyLimits, Lease, Limiter, MemoryLimiter, RedisLimiter
from tests.discovery.tcp_proxy import TcpProxy

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"

T = TypeVar("T")
Factory = Callable[..., Limiter]


class Clock:
    """The time a limiter counts in, moved by the test: windows pass without waiting for them."""

    def __init__(self) -> None:
        self.seconds = 1_000_000.0

    def __call__(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def require_redis() -> str:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1).close()
    except OSError:
        pytest.fail(f"Redis is not answering on {REDIS_HOST}:{REDIS_PORT}")
    return REDIS_URL


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; whatever the test left under it is deleted afterwards."""
    prefix = f"avocado-test:limits:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, prefix: str) -> Factory:
    """Makes a limiter of the parametrized kind (call it inside the event loop that uses it)."""
    if request.param == "memory":
        return MemoryLimiter
    url = require_redis()

    def make_redis(**options: Any) -> Limiter:
        return RedisLimiter(url, prefix=prefix, **options)

    return make_redis


def run(make: Factory, body: Callable[[Limiter], Awaitable[T]], **options: Any) -> T:
    """``body(limiter)`` in a fresh event loop, with a limiter made by ``make(**options)``."""

    async def main() -> T:
        limiter = make(**options)
        try:
            async with asyncio.timeout(30):
                return await body(limiter)
        finally:
            await limiter.aclose()

    return asyncio.run(main())


async def refusal(limiter: Limiter, limits: KeyLimits, key: str = "k") -> Refused:
    with pytest.raises(Refused) as caught:
        await limiter.acquire(key, limits)
    return caught.value


async def take(limiter: Limiter, limits: KeyLimits, n: int, key: str = "k") -> list[Lease]:
    return [await limiter.acquire(key, limits) for _ in range(n)]


def test_rpm_refuses_the_request_past_the_limit_until_the_oldest_is_a_minute_old(
    make: Factory, clock: Clock
) -> None:
    limits = KeyLimits(rpm=5)

    async def body(limiter: Limiter) -> None:
        first = await limiter.acquire("k", limits)
        await first.release()
        clock.advance(2)
        for lease in await take(limiter, limits, 4):
            await lease.release()
        refused = await refusal(limiter, limits)
        assert refused.status == 429
        assert refused.message == "rate limit exceeded: 5 requests per minute for this key"
        assert refused.retry_after == 58  # the first frees at 60 s
        await limiter.acquire("other", limits)  # keys are counted apart
        clock.advance(58)
        await limiter.acquire("k", limits)
        await refusal(limiter, limits)

    run(make, body, clock=clock)


def test_rpm_window_slides(make: Factory, clock: Clock) -> None:
    limits = KeyLimits(rpm=2)

    async def body(limiter: Limiter) -> None:
        await limiter.acquire("k", limits)  # t=0
        clock.advance(0.6)
        await limiter.acquire("k", limits)  # t=0.6
        refused = await refusal(limiter, limits)
        assert refused.message == "rate limit exceeded: 2 requests per 1.5 s for this key"
        assert refused.retry_after == 1  # never below one second
        clock.advance(1.0)  # t=1.6: the first has left the window, the second has not
        await limiter.acquire("k", limits)
        await refusal(limiter, limits)
        clock.advance(0.6)  # t=2.2: the second has left too
        await limiter.acquire("k", limits)

    run(make, body, window_seconds=1.5, clock=clock)


def test_tpm_counts_released_tokens_in_the_window(make: Factory, clock: Clock) -> None:
    limits = KeyLimits(tpm=100)

    async def body(limiter: Limiter) -> None:
        await (await limiter.acquire("k", limits)).release(60)
        clock.advance(1)
        await (await limiter.acquire("k", limits)).release(30)
        slow = await limiter.acquire("k", limits)  # 90 < 100: admitted, and may take it beyond
        await slow.release(20)
        refused = await refusal(limiter, limits)
        assert refused.status == 429
        assert refused.message == "token limit exceeded: 100 tokens per minute for this key"
        # 110 tokens: below 100 once the first 60 (recorded a second earlier) have left the window
        assert refused.retry_after == 59

    run(make, body, clock=clock)


def test_tpm_recovers_after_the_window_and_ignores_tokens_of_keys_without_tpm(
    make: Factory, clock: Clock
) -> None:
    limits = KeyLimits(tpm=10)

    async def body(limiter: Limiter) -> None:
        await (await limiter.acquire("k", KeyLimits(rpm=100))).release(1000)  # no tpm: not recorded
        await (await limiter.acquire("k", limits)).release(10)
        await refusal(limiter, limits)
        clock.advance(0.9)
        await refusal(limiter, limits)
        clock.advance(0.2)
        lease = await limiter.acquire("k", limits)
        await lease.release(-5)  # nonsense counts as none
        await (await limiter.acquire("k", limits)).release(0)

    run(make, body, window_seconds=1.0, clock=clock)


def test_max_parallel_frees_a_slot_on_release_once(make: Factory) -> None:
    limits = KeyLimits(max_parallel=2)

    async def body(limiter: Limiter) -> None:
        first, second = await take(limiter, limits, 2)
        refused = await refusal(limiter, limits)
        assert refused.status == 429
        assert refused.message == "too many parallel requests: at most 2 at once for this key"
        assert refused.retry_after == 1
        await first.release(10)
        third = await limiter.acquire("k", limits)
        await first.release()  # twice: frees nothing more
        await refusal(limiter, limits)
        await second.release()
        await third.release()
        await take(limiter, limits, 2)

    run(make, body)


def test_a_refusal_records_nothing(make: Factory) -> None:
    async def body(limiter: Limiter) -> None:
        held = await limiter.acquire("k", KeyLimits(rpm=3, max_parallel=1))
        for _ in range(5):  # refused by max_parallel: must not count against rpm
            await refusal(limiter, KeyLimits(rpm=3, max_parallel=1))
        await held.release()
        for lease in await take(limiter, KeyLimits(rpm=3, max_parallel=1), 1):
            await lease.release()
        await (await limiter.acquire("k", KeyLimits(rpm=3))).release()
        await refusal(limiter, KeyLimits(rpm=3))  # it would be the fourth admitted in the minute

        # Refused by rpm while the slot is free: the slot must stay free.
        refused = await refusal(limiter, KeyLimits(rpm=3, max_parallel=1))
        assert refused.message.startswith("rate limit exceeded")
        await limiter.acquire("k", KeyLimits(max_parallel=1))

    run(make, body)


def test_several_limits_reached_name_the_first_and_wait_the_longest(make: Factory) -> None:
    async def body(limiter: Limiter) -> None:
        await limiter.acquire("k", KeyLimits(max_parallel=1))
        refused = await refusal(limiter, KeyLimits(rpm=1, max_parallel=1))
        assert refused.message == "too many parallel requests: at most 1 at once for this key"
        await limiter.acquire("j", KeyLimits(rpm=1, max_parallel=1))
        refused = await refusal(limiter, KeyLimits(rpm=1, max_parallel=1), key="j")
        assert refused.message == "rate limit exceeded: 1 requests per minute for this key"
        assert refused.retry_after is not None and refused.retry_after >= 59  # rpm's wait, not parallel's

    run(make, body)


def test_unlimited_keys_and_zero_limits(make: Factory) -> None:
    async def body(limiter: Limiter) -> None:
        for lease in await take(limiter, KeyLimits(), 50):
            await lease.release(1_000_000)
        refused = await refusal(limiter, KeyLimits(rpm=0))
        assert refused.retry_after is not None and refused.retry_after >= 59
        await refusal(limiter, KeyLimits(tpm=0))
        await refusal(limiter, KeyLimits(max_parallel=0))

    run(make, body)
    with pytest.raises(ValueError, match="rpm must not be negative"):
        KeyLimits(rpm=-1)


def test_a_lease_never_released_expires(make: Factory, clock: Clock) -> None:
    limits = KeyLimits(max_parallel=1)

    async def body(limiter: Limiter) -> None:
        await limiter.acquire("k", limits)  # its holder "crashes": never released
        await refusal(limiter, limits)
        clock.advance(0.9)
        await refusal(limiter, limits)
        clock.advance(0.2)
        await limiter.acquire("k", limits)

    run(make, body, lease_timeout=1.0, clock=clock)


def test_memory_limiter_forgets_idle_keys() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])

    async def body() -> None:
        for key in ("a", "b", "c"):
            await (await limiter.acquire(key, KeyLimits(rpm=5, tpm=100, max_parallel=2))).release(7)
        assert len(limiter._keys) == 3
        now[0] += 61
        await limiter.acquire("d", KeyLimits(rpm=5))
        assert list(limiter._keys) == ["d"]

    asyncio.run(body())


def test_replicas_on_separate_connections_share_the_limits(prefix: str) -> None:
    url = require_redis()

    async def main() -> None:
        one = RedisLimiter(url, prefix=prefix)
        other = RedisLimiter(Redis.from_url(url), prefix=prefix)
        try:
            await take(one, KeyLimits(rpm=3), 2)
            await other.acquire("k", KeyLimits(rpm=3))
            await refusal(one, KeyLimits(rpm=3))
            await refusal(other, KeyLimits(rpm=3))

            held = await one.acquire("p", KeyLimits(max_parallel=1))
            await refusal(other, KeyLimits(max_parallel=1), key="p")
            await held.release()
            await other.acquire("p", KeyLimits(max_parallel=1))

            await (await other.acquire("t", KeyLimits(tpm=50))).release(50)
            await refusal(one, KeyLimits(tpm=50), key="t")
        finally:
            await one.aclose()
            await other.aclose()
        assert await other.redis.ping()  # a client it was given stays open
        await other.redis.aclose()

    asyncio.run(main())


_REPLICA = """
import asyncio, sys
from avocado.gateway.hooks import Refused
from avocado.gateway.limits import KeyLimits, RedisLimiter

async def main(url, prefix, n):
    limiter = RedisLimiter(url, prefix=prefix)
    await limiter.redis.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one():
        try:
            await limiter.acquire("shared", KeyLimits(rpm=10))
            return 1
        except Refused:
            return 0

    admitted = sum(await asyncio.gather(*(one() for _ in range(n))))
    await limiter.aclose()
    print(admitted, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_replica_processes_racing_admit_exactly_the_limit(prefix: str) -> None:
    url = require_redis()
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, url, prefix, "10"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for replica in replicas:
            assert replica.stdout.readline().strip() == "ready"
        for replica in replicas:  # all at once: 30 requests race for 10 places
            replica.stdin.write("go\n")
            replica.stdin.flush()
        admitted = [int(replica.communicate(timeout=30)[0].strip()) for replica in replicas]
    finally:
        for replica in replicas:
            replica.kill()
    assert all(replica.returncode == 0 for replica in replicas)
    assert sum(admitted) == 10, admitted


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_redis_down_fails_open_with_one_warning(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        limiter = RedisLimiter(f"redis://127.0.0.1:{closed_port()}/0", prefix=prefix)
        try:
            started = time.monotonic()
            leases = await take(limiter, KeyLimits(rpm=1, tpm=1, max_parallel=1), 20)
            for lease in leases:
                await lease.release(100)
            assert time.monotonic() - started < 2
        finally:
            await limiter.aclose()

    with caplog.at_level(logging.WARNING, logger="avocado.gateway.limits"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "letting requests through" in warnings[0].getMessage()


def test_redis_down_fails_closed_when_asked(prefix: str) -> None:
    async def main() -> None:
        limiter = RedisLimiter(f"redis://127.0.0.1:{closed_port()}/0", prefix=prefix, fail_open=False)
        try:
            for _ in range(3):
                refused = await refusal(limiter, KeyLimits(rpm=100))
                assert refused.status == 503 and refused.retry_after == 1
            await limiter.acquire("k", KeyLimits())  # no limits: Redis is not needed
        finally:
            await limiter.aclose()

    asyncio.run(main())


def test_limits_hold_again_once_redis_is_back(prefix: str, clock: Clock) -> None:
    require_redis()
    limits = KeyLimits(rpm=2)

    async def main() -> None:
        async with TcpProxy(REDIS_HOST, REDIS_PORT) as proxy:
            url = f"redis://127.0.0.1:{proxy.port}/0"
            limiter = RedisLimiter(url, prefix=prefix, retry_interval=5, clock=clock)
            try:
                await take(limiter, limits, 2)
                await refusal(limiter, limits)
                await proxy.cut()
                await take(limiter, limits, 5)  # let through while Redis is away
                await proxy.restore()
                clock.advance(4.9)
                await take(limiter, limits, 1)  # still resting: not tried yet
                clock.advance(0.2)
                await refusal(limiter, limits)  # the two admitted before the cut still count
            finally:
                await limiter.aclose()

    asyncio.run(main())


def test_redis_keys_expire_with_the_window(prefix: str) -> None:
    url = require_redis()

    async def main() -> None:
        limiter = RedisLimiter(url, prefix=prefix, window_seconds=30, lease_timeout=90)
        try:
            await (await limiter.acquire("k", KeyLimits(rpm=5, tpm=100, max_parallel=2))).release(12)
            await limiter.acquire("k", KeyLimits(rpm=5, tpm=100, max_parallel=2))
            requests, tokens, total, leases = limiter.keys("k")
            for key, most in ((requests, 30_000), (tokens, 30_000), (total, 30_000), (leases, 90_000)):
                assert most - 2000 < await limiter.redis.pttl(key) <= most, key
            assert int(await limiter.redis.get(total)) == 12
        finally:
            await limiter.aclose()

    asyncio.run(main())


def test_the_token_total_is_rebuilt_if_lost(prefix: str) -> None:
    url = require_redis()
    limits = KeyLimits(tpm=100)

    async def main() -> None:
        limiter = RedisLimiter(url, prefix=prefix)
        try:
            for tokens in (40, 50):
                await (await limiter.acquire("k", limits)).release(tokens)
            await limiter.redis.delete(limiter.keys("k")[2])
            await (await limiter.acquire("k", limits)).release(10)  # 40 + 50 + 10
            await refusal(limiter, limits)
        finally:
            await limiter.aclose()

    asyncio.run(main())


def test_where_a_key_stands_is_told_in_openais_headers(make: Factory, clock: Clock) -> None:
    limits = KeyLimits(rpm=3, tpm=100)

    def headers(source: Lease | Refused) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in source.headers}

    async def body(limiter: Limiter) -> None:
        first = await limiter.acquire("k", limits)
        assert headers(first) == {
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "2",  # this request counted
            "x-ratelimit-reset-requests": "1m0s",  # a window after the latest request
            "x-ratelimit-limit-tokens": "100",
            "x-ratelimit-remaining-tokens": "100",
            "x-ratelimit-reset-tokens": "0s",  # no tokens in the window
        }
        await first.release(30)
        clock.advance(10.5)
        second = await limiter.acquire("k", limits)
        assert headers(second)["x-ratelimit-remaining-requests"] == "1"
        assert headers(second)["x-ratelimit-remaining-tokens"] == "70"
        assert headers(second)["x-ratelimit-reset-tokens"] == "49.5s"
        await second.release(80)
        third = await limiter.acquire("k", KeyLimits(rpm=3))  # only the limits a key has are told
        assert set(headers(third)) == {
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        }
        clock.advance(5)
        refused = await refusal(limiter, limits)
        assert headers(refused)["x-ratelimit-remaining-requests"] == "0"
        assert headers(refused)["x-ratelimit-reset-requests"] == "55s"
        assert headers(refused)["x-ratelimit-remaining-tokens"] == "0"  # 110 counted, over the 100
        assert headers(refused)["x-ratelimit-reset-tokens"] == "55s"
        assert (await limiter.acquire("p", KeyLimits(max_parallel=2))).headers == ()

    run(make, body, clock=clock)
