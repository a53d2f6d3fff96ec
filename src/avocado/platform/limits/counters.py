"""What each user is using now: requests in the last minute, requests running, tokens today.

:class:`MemoryCounters` keeps them in the process (one platform); :class:`RedisCounters` in Redis,
so replicas share them: every check and count is one Lua script, so two replicas cannot both let
the last allowed request through. A running request holds a *lease* that expires ``lease_ttl``
after it was last renewed (:class:`~avocado.platform.limits.service.Admission` renews it), so a
replica that dies mid-request frees its users' slots within a minute.

The minute is a sliding window (the request ``window`` seconds ago no longer counts); the day is the
UTC day.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from avocado.platform.limits.errors import Reason

__all__ = [
    "DAY",
    "WINDOW",
    "Counters",
    "MemoryCounters",
    "Quota",
    "RedisCounters",
    "Refusal",
    "Usage",
    "day_of",
    "seconds_to_midnight",
]

WINDOW = 60.0  # seconds: requests_per_minute counts the requests of the last minute
DAY = 86_400
LEASE_TTL = 60.0  # seconds a running request's slot is held without being renewed
_PREFIX = "avocado:platform:limits:"


@dataclass(frozen=True, slots=True)
class Quota:
    """The limits one admission is checked against (``None``: no limit)."""

    requests_per_minute: int | None = None
    concurrent_requests: int | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    limit: int
    retry_after: float  # seconds


@dataclass(frozen=True, slots=True)
class Usage:
    requests_last_minute: int
    concurrent_requests: int
    tokens_today: int


def day_of(moment: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


def seconds_to_midnight(moment: float) -> float:
    return DAY - moment % DAY


class Counters(Protocol):
    lease_ttl: float

    async def admit(self, user_id: str, quota: Quota, lease: str) -> Refusal | None:
        """Atomically: the first limit of ``quota`` the user is at (nothing counted), or count the
        request and hold ``lease`` as one of theirs running (``None``)."""

    async def renew(self, user_id: str, lease: str) -> None: ...

    async def release(self, user_id: str, lease: str) -> None:
        """The request holding ``lease`` ended (idempotent)."""

    async def add_tokens(self, user_id: str, tokens: int) -> None: ...

    async def usage(self, user_id: str) -> Usage: ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lease_ttl = math.inf
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}  # user -> start times within the window
        self._running: dict[str, set[str]] = {}  # user -> leases
        self._tokens: dict[str, tuple[str, int]] = {}  # user -> (UTC day, tokens that day)
        self._lock = threading.Lock()

    def _recent_of(self, user_id: str, now: float) -> deque[float]:
        recent = self._recent.setdefault(user_id, deque())
        while recent and recent[0] <= now - WINDOW:
            recent.popleft()
        return recent

    def _tokens_of(self, user_id: str, now: float) -> int:
        day, tokens = self._tokens.get(user_id, ("", 0))
        return tokens if day == day_of(now) else 0

    async def admit(self, user_id: str, quota: Quota, lease: str) -> Refusal | None:
        now = self._clock()
        with self._lock:
            recent = self._recent_of(user_id, now)
            running = self._running.setdefault(user_id, set())
            if quota.tokens_per_day is not None and self._tokens_of(user_id, now) >= quota.tokens_per_day:
                return Refusal("tokens_per_day", quota.tokens_per_day, seconds_to_midnight(now))
            if quota.requests_per_minute is not None and len(recent) >= quota.requests_per_minute:
                return Refusal("requests_per_minute", quota.requests_per_minute, recent[0] + WINDOW - now)
            if quota.concurrent_requests is not None and len(running) >= quota.concurrent_requests:
                return Refusal("concurrent_requests", quota.concurrent_requests, 1.0)
            recent.append(now)
            running.add(lease)
        return None

    async def renew(self, user_id: str, lease: str) -> None:
        return None

    async def release(self, user_id: str, lease: str) -> None:
        with self._lock:
            running = self._running.get(user_id)
            if running is not None:
                running.discard(lease)
                if not running:
                    del self._running[user_id]

    async def add_tokens(self, user_id: str, tokens: int) -> None:
        now = self._clock()
        with self._lock:
            self._tokens[user_id] = (day_of(now), self._tokens_of(user_id, now) + tokens)

    async def usage(self, user_id: str) -> Usage:
        now = self._clock()
        with self._lock:
            recent = len(self._recent_of(user_id, now))
            return Usage(recent, len(self._running.get(user_id, ())), self._tokens_of(user_id, now))

    async def aclose(self) -> None:
        return None


# KEYS: recent (zset of leases by start time), running (zset of leases by expiry), tokens of today.
# ARGV: now, window, lease ttl, lease, then the limits (0: none): per minute, at once, per day.
_ADMIT = """
local now, window, ttl, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local rpm, running, tpd = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if tpd > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= tpd then
  return {'tokens_per_day', '0'}
end
if rpm > 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'requests_per_minute', tostring(tonumber(oldest[2]) + window - now)}
end
if running > 0 and redis.call('ZCARD', KEYS[2]) >= running then
  return {'concurrent_requests', '1'}
end
redis.call('ZADD', KEYS[1], now, lease)
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
redis.call('ZADD', KEYS[2], now + ttl, lease)
redis.call('EXPIRE', KEYS[2], math.ceil(ttl) + 1)
return {'ok', '0'}
"""

_USAGE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
return {
  redis.call('ZCOUNT', KEYS[1], '(' .. tostring(now - window), '+inf'),
  redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf'),
  tonumber(redis.call('GET', KEYS[3]) or '0'),
}
"""


class RedisCounters:
    def __init__(
        self, url: str, *, lease_ttl: float = LEASE_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.lease_ttl = lease_ttl
        self._clock = clock
        self._redis = Redis.from_url(url)

    def _keys(self, user_id: str, now: float) -> list[str]:
        base = f"{_PREFIX}{user_id}:"
        return [base + "recent", base + "running", base + "tokens:" + day_of(now)]

    async def admit(self, user_id: str, quota: Quota, lease: str) -> Refusal | None:
        now = self._clock()
        limits = [quota.requests_per_minute, quota.concurrent_requests, quota.tokens_per_day]
        args: list[str | int] = [repr(now), repr(WINDOW), repr(self.lease_ttl), lease]
        args += [limit or 0 for limit in limits]
        answer = await self._redis.eval(_ADMIT, 3, *self._keys(user_id, now), *args)
        reason, wait = (part.decode() if isinstance(part, bytes) else str(part) for part in answer)
        if reason == "ok":
            return None
        if reason == "tokens_per_day":
            wait = repr(seconds_to_midnight(now))
        limit = {"requests_per_minute": limits[0], "concurrent_requests": limits[1]}.get(reason, limits[2])
        assert limit is not None
        return Refusal(reason, limit, float(wait))  # type: ignore[arg-type]

    async def renew(self, user_id: str, lease: str) -> None:
        now = self._clock()
        running = self._keys(user_id, now)[1]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(running, {lease: now + self.lease_ttl}, xx=True)
            pipe.expire(running, math.ceil(self.lease_ttl) + 1)
            await pipe.execute()

    async def release(self, user_id: str, lease: str) -> None:
        await self._redis.zrem(self._keys(user_id, self._clock())[1], lease)

    async def add_tokens(self, user_id: str, tokens: int) -> None:
        key = self._keys(user_id, self._clock())[2]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, tokens)
            pipe.expire(key, 2 * DAY)
            await pipe.execute()

    async def usage(self, user_id: str) -> Usage:
        now = self._clock()
        recent, running, tokens = await self._redis.eval(
            _USAGE, 3, *self._keys(user_id, now), repr(now), repr(WINDOW)
        )
        return Usage(int(recent), int(running), int(tokens))

    async def aclose(self) -> None:
        await self._redis.aclose()
