"""Per-API-key limits: requests per minute, tokens per minute and requests in flight at once.

A request asks its key's :class:`Limiter` for a :class:`Lease` before it is forwarded and releases
the lease, with the tokens it used, when the response has ended. :meth:`Limiter.acquire` raises
:class:`~avocado.gateway.hooks.Refused` (429, with a Retry-After) when a limit is reached:

- **rpm** is a sliding log: the start time of every admitted request of the last ``window_seconds``
  (60) is kept, and a request is refused while ``rpm`` of them are in the window. Exact: with rpm=5
  the sixth request of a minute is refused, and a request is admitted again once the first of the
  five is a full window old (which is the Retry-After).
- **tpm** is check-then-record, since tokens are known only once the answer is out: a request is
  refused while the tokens recorded in the window have reached ``tpm``, and :meth:`Lease.release`
  records the request's tokens (prompt and generated) at the time it ends. One request may thus
  take a key beyond its tpm; the next ones wait until enough of it has left the window.
- **max_parallel** counts leases not yet released. Each lease also expires ``lease_timeout`` (10
  minutes) after it was taken, so a replica that died mid-request cannot hold a key's slots forever.

A refusal records nothing: a request refused by one limit takes nothing from the others. When
several limits are reached at once, the message names the first of rpm, tpm, parallel and the
Retry-After is the longest wait among them.

:class:`MemoryLimiter` keeps all this in the process (one gateway). :class:`RedisLimiter` keeps it in
Redis, so gateway replicas share their keys' limits: each acquire is one Lua script that checks the
three limits and records the request only if all pass (one round trip, atomic across replicas, on
the Redis server's clock so replicas' clocks do not matter), and each release is another.
If Redis cannot be reached, requests are let through (``fail_open=True``, the default: inference
stays up while limits are briefly not enforced) with a warning in the log, or refused with 503
(``fail_open=False``). After a failure Redis is left alone for ``retry_interval`` seconds, so an
outage costs no time on every request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from avocado.gateway.hooks import Refused

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_WINDOW",
    "KeyLimits",
    "Lease",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 60.0  # seconds: "per minute"
DEFAULT_LEASE_TIMEOUT = 600.0  # seconds a lease counts as in flight at most

_Kind = Literal["rpm", "tpm", "parallel"]
_PARALLEL_RETRY = 1  # seconds: a slot frees when some request ends, which nobody can tell in advance


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key's limits; ``None`` is no limit. ``0`` refuses every request."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + generated) per minute
    max_parallel: int | None = None  # requests in flight at once

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_parallel"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_parallel is None


_Release = Callable[["Lease", int], Awaitable[None]]


@dataclass(eq=False, slots=True)
class Lease:
    """A request admitted under ``limits``; :meth:`release` it once, when its response has ended."""

    key_id: str
    limits: KeyLimits
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _release: _Release | None = field(default=None, repr=False)
    released: bool = field(default=False, init=False)

    async def release(self, tokens: int = 0) -> None:
        """The request is over and used ``tokens`` (prompt + generated); a second call does nothing.

        The release goes through even if the caller is cancelled meanwhile (a client went away).
        """
        if self.released:
            return
        self.released = True
        if self._release is not None:
            counted = max(0, tokens) if self.limits.tpm is not None else 0
            await asyncio.shield(self._release(self, counted))


class Limiter(Protocol):
    async def acquire(self, key_id: str, limits: KeyLimits) -> Lease:
        """Admit one request of ``key_id`` or raise :class:`Refused` (429) naming the limit reached."""
        ...

    async def aclose(self) -> None:
        """Let go of connections (leases still out may be released no more)."""
        ...


def _refusal(kind: _Kind, limits: KeyLimits, wait: float, window: float) -> Refused:
    per = "per minute" if window == DEFAULT_WINDOW else f"per {window:g} s"
    if kind == "rpm":
        message = f"rate limit exceeded: {limits.rpm} requests {per} for this key"
    elif kind == "tpm":
        message = f"token limit exceeded: {limits.tpm} tokens {per} for this key"
    else:
        message = f"too many parallel requests: at most {limits.max_parallel} at once for this key"
    return Refused(429, message, retry_after=max(1, math.ceil(wait - 1e-6)))


@dataclass(slots=True)
class _KeyState:
    requests: deque[float] = field(default_factory=deque)  # start times, oldest first
    tokens: deque[tuple[float, int]] = field(default_factory=deque)  # (end time, tokens), oldest first
    token_total: int = 0  # the sum of ``tokens``
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry

    def prune(self, now: float, window: float) -> None:
        since = now - window
        while self.requests and self.requests[0] <= since:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= since:
            self.token_total -= self.tokens.popleft()[1]
        for lease_id in [lease_id for lease_id, expiry in self.leases.items() if expiry <= now]:
            del self.leases[lease_id]

    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.leases)

    def rpm_wait(self, rpm: int, now: float, window: float) -> float | None:
        """Seconds until one more request fits, or None if it fits now."""
        count = len(self.requests)
        if count < rpm:
            return None
        return window if rpm == 0 else self.requests[count - rpm] + window - now

    def tpm_wait(self, tpm: int, now: float, window: float) -> float | None:
        if self.token_total < tpm:
            return None
        left = self.token_total
        for ended, tokens in self.tokens:
            left -= tokens
            if left < tpm:
                return ended + window - now
        return window


class MemoryLimiter:
    """Limits kept in this process: for one gateway (replicas would each allow the full limits)."""

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_WINDOW,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.lease_timeout = lease_timeout
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()  # nothing awaits inside; this only guards against threads
        self._next_sweep = clock() + window_seconds

    async def acquire(self, key_id: str, limits: KeyLimits) -> Lease:
        if limits.unlimited:
            return Lease(key_id, limits)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            state = self._keys.setdefault(key_id, _KeyState())
            state.prune(now, self.window)
            refused = self._check(state, limits, now)
            if refused is not None:
                raise refused
            lease = Lease(key_id, limits, _release=self._release)
            if limits.rpm is not None:
                state.requests.append(now)
            if limits.max_parallel is not None:
                state.leases[lease.lease_id] = now + self.lease_timeout
            return lease

    async def aclose(self) -> None:
        return None

    def _check(self, state: _KeyState, limits: KeyLimits, now: float) -> Refused | None:
        waits: list[tuple[_Kind, float]] = []
        if limits.rpm is not None and (wait := state.rpm_wait(limits.rpm, now, self.window)) is not None:
            waits.append(("rpm", wait))
        if limits.tpm is not None and (wait := state.tpm_wait(limits.tpm, now, self.window)) is not None:
            waits.append(("tpm", wait))
        if limits.max_parallel is not None and len(state.leases) >= limits.max_parallel:
            waits.append(("parallel", _PARALLEL_RETRY))
        if not waits:
            return None
        return _refusal(waits[0][0], limits, max(wait for _, wait in waits), self.window)

    async def _release(self, lease: Lease, tokens: int) -> None:
        with self._lock:
            state = self._keys.setdefault(lease.key_id, _KeyState())
            state.leases.pop(lease.lease_id, None)
            if tokens > 0:
                state.tokens.append((self._clock(), tokens))
                state.token_total += tokens

    def _sweep(self, now: float) -> None:
        """Once per window, forget keys with nothing left in their windows."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        for key_id, state in list(self._keys.items()):
            state.prune(now, self.window)
            if state.empty():
                del self._keys[key_id]


# Shared by both scripts: the key's token total, rebuilt from the token log if the total is missing.
_TOKEN_TOTAL = """
local function tokens_of(member)
  return tonumber(string.match(member, '^(%d+):'))
end
local function token_total(log_key, total_key)
  local total = redis.call('GET', total_key)
  if total then return tonumber(total) end
  local sum = 0
  for _, member in ipairs(redis.call('ZRANGE', log_key, 0, -1)) do sum = sum + tokens_of(member) end
  local ttl = redis.call('PTTL', log_key)
  if sum > 0 and ttl > 0 then redis.call('SET', total_key, sum, 'PX', ttl) end
  return sum
end
"""

# KEYS: request log, token log, token total, parallel leases (sorted sets but the total).
# ARGV: rpm, tpm, max_parallel (-1: no limit), window, lease timeout (seconds), lease id.
# Returns {'', '0'} when admitted, else {first limit reached, seconds to wait}.
_ACQUIRE = (
    _TOKEN_TOTAL
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, par = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, timeout, id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local since = now - window
local refused, wait = '', 0
local function refuse(kind, seconds)
  if refused == '' then refused = kind end
  if seconds > wait then wait = seconds end
end

if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', since)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local frees = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
    local oldest = frees[2] and tonumber(frees[2]) or now  -- rpm 0: a full window
    refuse('rpm', oldest + window - now)
  end
end

if tpm >= 0 then
  local total = token_total(KEYS[2], KEYS[3])
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', since)
  if #expired > 0 then
    for _, member in ipairs(expired) do total = total - tokens_of(member) end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', since)
    if total <= 0 or redis.call('ZCARD', KEYS[2]) == 0 then
      total = 0
      redis.call('DEL', KEYS[3])
    else
      redis.call('SET', KEYS[3], total, 'KEEPTTL')
    end
  end
  if total >= tpm then
    local left, frees = total, window
    local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      left = left - tokens_of(entries[i])
      if left < tpm then
        frees = tonumber(entries[i + 1]) + window - now
        break
      end
    end
    refuse('tpm', frees)
  end
end

if par >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= par then refuse('parallel', 1) end
end

if refused ~= '' then return {refused, tostring(wait)} end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, id)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
end
if par >= 0 then
  redis.call('ZADD', KEYS[4], now + timeout, id)
  redis.call('PEXPIRE', KEYS[4], math.ceil(timeout * 1000))
end
return {'', '0'}
"""
)

# KEYS: token log, token total, parallel leases. ARGV: lease id, tokens to record (0: none), window.
_RELEASE = (
    _TOKEN_TOTAL
    + """
redis.call('ZREM', KEYS[3], ARGV[1])
local tokens = tonumber(ARGV[2])
if tokens > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local ttl = math.ceil(tonumber(ARGV[3]) * 1000)
  redis.call('SET', KEYS[2], token_total(KEYS[1], KEYS[2]) + tokens)
  redis.call('ZADD', KEYS[1], now, ARGV[2] .. ':' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""
)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _limit_arg(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    """Limits kept in Redis under ``prefix``, shared by every gateway replica that uses the same one.

    ``redis`` is a URL (the limiter then owns the client, with ``timeout`` on connects and replies
    and no retry backoff) or a ``redis.asyncio.Redis`` client, left open by :meth:`aclose`.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        prefix: str = "avocado:limits:",
        window_seconds: float = DEFAULT_WINDOW,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        fail_open: bool = True,
        timeout: float = 1.0,
        retry_interval: float = 5.0,
    ) -> None:
        self._owned = isinstance(redis, str)
        self.redis = self._connect(redis, timeout) if isinstance(redis, str) else redis
        self.prefix = prefix
        self.window = window_seconds
        self.lease_timeout = lease_timeout
        self.fail_open = fail_open
        self.retry_interval = retry_interval
        self._acquire_script = self.redis.register_script(_ACQUIRE)
        self._release_script = self.redis.register_script(_RELEASE)
        self._down_until = 0.0  # monotonic time before which Redis is not tried again

    @staticmethod
    def _connect(url: str, timeout: float) -> Redis:
        retry = Retry(NoBackoff(), 1)  # once, at once: a pooled connection may have gone stale
        return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=retry)

    def keys(self, key_id: str) -> tuple[str, str, str, str]:
        """The Redis keys of ``key_id``: request log, token log, token total, parallel leases."""
        base = f"{self.prefix}{{{key_id}}}"  # a hash tag: one cluster slot for the four keys
        return f"{base}:requests", f"{base}:tokens", f"{base}:token-total", f"{base}:leases"

    async def acquire(self, key_id: str, limits: KeyLimits) -> Lease:
        if limits.unlimited:
            return Lease(key_id, limits)
        lease = Lease(key_id, limits, _release=self._release)
        if self._resting():
            return self._unavailable(lease)
        args = (
            _limit_arg(limits.rpm),
            _limit_arg(limits.tpm),
            _limit_arg(limits.max_parallel),
            self.window,
            self.lease_timeout,
            lease.lease_id,
        )
        try:
            kind, wait = await self._acquire_script(keys=self.keys(key_id), args=args)
        except RedisError as exc:
            self._failed("acquire", exc)
            return self._unavailable(lease)
        self._recovered()
        if _text(kind):
            raise _refusal(_checked_kind(_text(kind)), limits, float(_text(wait)), self.window)
        return lease

    async def aclose(self) -> None:
        if self._owned:
            await self.redis.aclose()

    async def _release(self, lease: Lease, tokens: int) -> None:
        if self._resting():
            return  # the lease expires by itself; its tokens go uncounted
        _, token_log, token_total, leases = self.keys(lease.key_id)
        try:
            await self._release_script(
                keys=(token_log, token_total, leases), args=(lease.lease_id, tokens, self.window)
            )
        except RedisError as exc:
            self._failed("release", exc)
        else:
            self._recovered()

    def _resting(self) -> bool:
        return time.monotonic() < self._down_until

    def _unavailable(self, lease: Lease) -> Lease:
        if self.fail_open:
            lease._release = None  # nothing was recorded, so there is nothing to give back
            return lease
        raise Refused(503, "rate limits are unavailable (Redis cannot be reached)", retry_after=1)

    def _failed(self, what: str, exc: RedisError) -> None:
        if self._down_until == 0.0:
            policy = "letting requests through" if self.fail_open else "refusing requests"
            log.warning("rate limits: Redis %s failed (%s); %s until it is back", what, exc, policy)
        self._down_until = time.monotonic() + self.retry_interval

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            log.info("rate limits: Redis is reachable again")
            self._down_until = 0.0


_KINDS: dict[str, _Kind] = {"rpm": "rpm", "tpm": "tpm", "parallel": "parallel"}


def _checked_kind(kind: str) -> _Kind:
    if kind not in _KINDS:
        raise ValueError(f"unknown limit {kind!r} from the acquire script")
    return _KINDS[kind]
