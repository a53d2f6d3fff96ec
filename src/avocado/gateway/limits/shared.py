"""Limits kept in Redis, shared by gateway replicas (see :mod:`avocado.gateway.limits`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from avocado.gateway.hooks import Headers, Refused
from avocado.gateway.limits.base import (
    DEFAULT_LEASE_TIMEOUT,
    DEFAULT_WINDOW,
    KeyLimits,
    Kind,
    Lease,
    Standing,
    rate_limit_headers,
    refusal,
)

__all__ = ["RedisLimiter"]

log = logging.getLogger("avocado.gateway.limits")


# Shared by both scripts: the time (the server's, unless the caller gives one), and the key's token
# total, rebuilt from the token log if the total is missing.
_TOKEN_TOTAL = """
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function newest(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  return last[2] and tonumber(last[2]) or nil
end
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
# ARGV: rpm, tpm, max_parallel (-1: no limit), window, lease timeout (seconds), lease id, now ('': the
# server's clock).
# Returns {first limit reached ('' when admitted), seconds to wait, requests in the window, seconds
# until they have all left it, tokens in the window, seconds until they have all left it} (-1 for a
# count without a limit).
_ACQUIRE = (
    _TOKEN_TOTAL
    + """
local now = clock(ARGV[7])
local rpm, tpm, par = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, timeout, id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local since = now - window
local refused, wait, tokens_in_window = '', 0, -1
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
  tokens_in_window = total
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

if refused == '' then
  if rpm >= 0 then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  end
  if par >= 0 then
    redis.call('ZADD', KEYS[4], now + timeout, id)
    redis.call('PEXPIRE', KEYS[4], math.ceil(timeout * 1000))
  end
end

local requests, requests_reset, tokens_reset = -1, 0, 0
if rpm >= 0 then
  requests = redis.call('ZCARD', KEYS[1])
  local last = newest(KEYS[1])
  if last then requests_reset = last + window - now end
end
if tpm >= 0 then
  local last = newest(KEYS[2])
  if last then tokens_reset = last + window - now end
end
return {refused, tostring(wait), tostring(requests), tostring(requests_reset),
        tostring(tokens_in_window), tostring(tokens_reset)}
"""
)

# KEYS: token log, token total, parallel leases. ARGV: lease id, tokens to record (0: none), window,
# now ('': the server's clock).
_RELEASE = (
    _TOKEN_TOTAL
    + """
redis.call('ZREM', KEYS[3], ARGV[1])
local tokens = tonumber(ARGV[2])
if tokens > 0 then
  local now = clock(ARGV[4])
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


def _standing_headers(limits: KeyLimits, standing: list[float]) -> Headers:
    """The acquire script's counts (requests, their reset, tokens, their reset) as headers."""
    requests, requests_reset, tokens, tokens_reset = standing
    return rate_limit_headers(
        None if limits.rpm is None else Standing(limits.rpm, limits.rpm - int(requests), requests_reset),
        None if limits.tpm is None else Standing(limits.tpm, limits.tpm - int(tokens), tokens_reset),
    )


class RedisLimiter:
    """Limits kept in Redis under ``prefix``, shared by every gateway replica that uses the same one.

    ``redis`` is a URL (the limiter then owns the client, with ``timeout`` on connects and replies
    and no retry backoff) or a ``redis.asyncio.Redis`` client, left open by :meth:`aclose`. Time is
    the Redis server's, so replicas agree whatever their own clocks say; ``clock`` replaces it, and
    the monotonic clock that times the rests after a failure (tests move it by hand).
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
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._owned = isinstance(redis, str)
        self._clock = clock
        self._monotonic = clock or time.monotonic  # how long Redis is left alone after a failure
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
            self._now(),
        )
        try:
            kind, wait, *standing = await self._acquire_script(keys=self.keys(key_id), args=args)
        except RedisError as exc:
            self._failed("acquire", exc)
            return self._unavailable(lease)
        self._recovered()
        headers = _standing_headers(limits, [float(_text(value)) for value in standing])
        if _text(kind):
            raise refusal(_checked_kind(_text(kind)), limits, float(_text(wait)), self.window, headers)
        lease.headers = headers
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
                keys=(token_log, token_total, leases),
                args=(lease.lease_id, tokens, self.window, self._now()),
            )
        except RedisError as exc:
            self._failed("release", exc)
        else:
            self._recovered()

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def _resting(self) -> bool:
        return self._monotonic() < self._down_until

    def _unavailable(self, lease: Lease) -> Lease:
        if self.fail_open:
            lease._release = None  # nothing was recorded, so there is nothing to give back
            return lease
        raise Refused(503, "rate limits are unavailable (Redis cannot be reached)", retry_after=1)

    def _failed(self, what: str, exc: RedisError) -> None:
        if self._down_until == 0.0:
            policy = "letting requests through" if self.fail_open else "refusing requests"
            log.warning("rate limits: Redis %s failed (%s); %s until it is back", what, exc, policy)
        self._down_until = self._monotonic() + self.retry_interval

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            log.info("rate limits: Redis is reachable again")
            self._down_until = 0.0


_KINDS: dict[str, Kind] = {"rpm": "rpm", "tpm": "tpm", "parallel": "parallel"}


def _checked_kind(kind: str) -> Kind:
    if kind not in _KINDS:
        raise ValueError(f"unknown limit {kind!r} from the acquire script")
    return _KINDS[kind]
