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

Admitted or refused, a request of a key with rpm or tpm learns where it stands, as OpenAI tells it
(:attr:`Lease.headers`, :attr:`Refused.headers`): ``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-requests`` (this request counted) and ``x-ratelimit-reset-requests`` (until
the key is back to its full rpm: a window after its latest request), and the same three for
``-tokens`` (tokens still free in the window, and until the newest counted ones leave it). Resets are
written as OpenAI writes them (``"1m0s"``, ``"20ms"``).

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

from avocado.gateway.limits.base import (
    DEFAULT_LEASE_TIMEOUT,
    DEFAULT_WINDOW,
    KeyLimits,
    Lease,
    Limiter,
    Standing,
    rate_limit_headers,
)
from avocado.gateway.limits.memory import MemoryLimiter
from avocado.gateway.limits.shared import RedisLimiter

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_WINDOW",
    "KeyLimits",
    "Lease",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "Standing",
    "rate_limit_headers",
]
