"""Brute-force limits on sign-in: per account and per client address, growing delays, ``429``.

Each key (``account:<e-mail>``, ``address:<ip>``) counts failed sign-ins. The first ``free`` ones
cost nothing; after that each failure makes the next attempt wait twice as long as the one before
(1 s, 2 s, 4 s, ... up to ``max_delay``), and an attempt during the wait is refused before the
password is even checked. A success clears the account's count (not the address's: one good
account must not reset an attacker's address). Counts fade ``window`` after the last failure.

Unknown e-mails count like known ones, so the limits say nothing about which accounts exist. In
memory by default; in Redis (shared by replicas) when configured.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["MemoryThrottle", "RedisThrottle", "Rule", "Throttle", "delay_after"]

_PREFIX = "avocado:platform:signin:"

# KEYS: the rules' keys; ARGV: now, max_delay, window, then each rule's free count. One script, so
# Redis runs the check and the count with nothing in between (replicas share the keys).
_RESERVE = """
local now, max_delay, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
  local last = tonumber(redis.call('HGET', key, 'last') or '0')
  local free = tonumber(ARGV[3 + i])
  if failures >= free then
    wait = math.max(wait, last + math.min(2 ^ (failures - free), max_delay) - now)
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'failures', 1)
  redis.call('HSET', key, 'last', ARGV[1])
  redis.call('EXPIRE', key, window)
end
return '0'
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('HINCRBY', key, 'failures', -1) <= 0 then
    redis.call('DEL', key)
  end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Rule:
    """A key and how many failures it may have before delays start."""

    key: str
    free: int


def delay_after(failures: int, free: int, max_delay: float) -> float:
    """Seconds the next attempt waits after ``failures`` failures in a row."""
    if failures < free:
        return 0.0
    return float(min(2.0 ** (failures - free), max_delay))


class Throttle(Protocol):
    max_delay: float

    async def wait(self, rules: Sequence[Rule]) -> float:
        """Seconds until an attempt under ``rules`` is allowed (0: now)."""

    async def failed(self, rules: Sequence[Rule]) -> None: ...

    async def reserve(self, rules: Sequence[Rule]) -> float:
        """Atomically: the wait if one applies (nothing counted), else count the attempt as a
        failure now and return 0, so parallel attempts cannot all pass one check."""

    async def release(self, rules: Sequence[Rule]) -> None:
        """Take back an attempt ``reserve`` counted (it did not fail)."""

    async def succeeded(self, rule: Rule) -> None: ...

    async def aclose(self) -> None: ...


class MemoryThrottle:
    def __init__(self, max_delay: float, window: float = 3600.0, clock: Callable[[], float] = time.time):
        self.max_delay = max_delay
        self.window = max(window, max_delay)
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (failures, last failure time)
        self._lock = threading.Lock()

    def _get(self, key: str, now: float) -> tuple[int, float]:
        failures, last = self._counts.get(key, (0, 0.0))
        if failures and now - last > self.window:
            del self._counts[key]
            return 0, 0.0
        return failures, last

    async def wait(self, rules: Sequence[Rule]) -> float:
        now = self._clock()
        with self._lock:
            waits = []
            for rule in rules:
                failures, last = self._get(rule.key, now)
                waits.append(last + delay_after(failures, rule.free, self.max_delay) - now)
        return max([0.0, *waits])

    async def failed(self, rules: Sequence[Rule]) -> None:
        now = self._clock()
        with self._lock:
            for rule in rules:
                failures, _ = self._get(rule.key, now)
                self._counts[rule.key] = (failures + 1, now)
            if len(self._counts) > 100_000:  # a flood of addresses: drop the faded ones
                for key in [k for k, (_, last) in self._counts.items() if now - last > self.window]:
                    del self._counts[key]

    async def reserve(self, rules: Sequence[Rule]) -> float:
        now = self._clock()
        with self._lock:  # the check and the count under one lock: no attempt slips between them
            wait = self._wait(rules, now)
            if wait > 0:
                return wait
            for rule in rules:
                failures, _ = self._get(rule.key, now)
                self._counts[rule.key] = (failures + 1, now)
        return 0.0

    def _wait(self, rules: Sequence[Rule], now: float) -> float:
        waits = [0.0]
        for rule in rules:
            failures, last = self._get(rule.key, now)
            waits.append(last + delay_after(failures, rule.free, self.max_delay) - now)
        return max(waits)

    async def release(self, rules: Sequence[Rule]) -> None:
        with self._lock:
            for rule in rules:
                failures, last = self._counts.get(rule.key, (0, 0.0))
                if failures > 1:
                    self._counts[rule.key] = (failures - 1, last)
                else:
                    self._counts.pop(rule.key, None)

    async def succeeded(self, rule: Rule) -> None:
        with self._lock:
            self._counts.pop(rule.key, None)

    async def aclose(self) -> None:
        return None


class RedisThrottle:
    """The same counts in Redis hashes (``failures``, ``last``), expiring ``window`` after the last."""

    def __init__(
        self, url: str, max_delay: float, window: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_delay = max_delay
        self.window = max(window, max_delay)
        self._clock = clock
        self._redis = Redis.from_url(url)

    async def wait(self, rules: Sequence[Rule]) -> float:
        async with self._redis.pipeline(transaction=False) as pipe:
            for rule in rules:
                pipe.hmget(_PREFIX + rule.key, "failures", "last")
            answers = await pipe.execute()
        now, waits = self._clock(), [0.0]
        for rule, (failures, last) in zip(rules, answers, strict=True):
            if failures is not None and last is not None:
                waits.append(float(last) + delay_after(int(failures), rule.free, self.max_delay) - now)
        return max(waits)

    async def failed(self, rules: Sequence[Rule]) -> None:
        now = self._clock()
        async with self._redis.pipeline(transaction=True) as pipe:
            for rule in rules:
                key = _PREFIX + rule.key
                pipe.hincrby(key, "failures", 1)
                pipe.hset(key, "last", repr(now))
                pipe.expire(key, math.ceil(self.window))
            await pipe.execute()

    async def reserve(self, rules: Sequence[Rule]) -> float:
        keys = [_PREFIX + rule.key for rule in rules]
        args: list[str | int] = [repr(self._clock()), repr(self.max_delay), math.ceil(self.window)]
        answer = await self._redis.eval(_RESERVE, len(keys), *keys, *args, *[rule.free for rule in rules])
        return float(answer)

    async def release(self, rules: Sequence[Rule]) -> None:
        keys = [_PREFIX + rule.key for rule in rules]
        await self._redis.eval(_RELEASE, len(keys), *keys)

    async def succeeded(self, rule: Rule) -> None:
        await self._redis.delete(_PREFIX + rule.key)

    async def aclose(self) -> None:
        await self._redis.aclose()
