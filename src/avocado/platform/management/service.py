"""Management through our gateway's master key: its nodes and its usage per user.

The platform reaches the gateway over HTTP only, as ``avocado gateway nodes`` and ``avocado keys``
do. Whether management is there is learnt by asking: ``GET /api/avocado/keys`` with the key answers
``200`` on our gateway when the key is its master key, ``401``/``403`` when it is not, and ``404`` on a
node or a plain Ollama, which have no such route. The answer is kept for a while (``ttl``): the
gateway ``avocado up`` starts comes up after the platform, so an upstream that cannot be reached yet
is asked again soon (``retry``), and a refusal seen later (a rotated key) turns management off at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from avocado.platform.errors import NotFound, PlatformError
from avocado.redact import redact_url

__all__ = ["GatewayManagement", "ManagementUnavailable", "UserUsage"]

log = logging.getLogger(__name__)

KEYS_PATH = "/api/avocado/keys"
NODES_PATH = "/api/avocado/nodes"
USAGE_PATH = "/api/avocado/keys/users"
UNAVAILABLE = "management needs our gateway and its key"


class ManagementUnavailable(NotFound):
    """The routes that need the gateway's master key answer 404 where there is none."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class UserUsage:
    """What the gateway counted for one user the platform named, summed over the keys it came with."""

    user_id: str
    requests: int
    tokens_in: int
    tokens_out: int
    last_used_at: datetime | None


class GatewayManagement:
    """The gateway's management API with its master key; :meth:`available` says whether it works."""

    def __init__(
        self,
        base_url: str,
        key: str | None,
        *,
        ttl: float = 300.0,
        retry: float = 5.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = redact_url(self.base_url)
        self._key = key
        self._ttl = ttl
        self._retry = retry
        self._clock = clock
        self._known: bool | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def available(self) -> bool:
        """Whether the upstream is our gateway and the key is its master key (asked once a while)."""
        if self._key is None:
            return False
        if self._known is not None and self._clock() < self._until:
            return self._known
        async with self._lock:
            if self._known is None or self._clock() >= self._until:
                known, keep = await self._probe()
                self._remember(known, keep)
            return bool(self._known)

    def _remember(self, known: bool, keep: float) -> None:
        if known and not self._known:
            log.info("management through the gateway at %s is on", self.where)
        self._known, self._until = known, self._clock() + keep

    async def _probe(self) -> tuple[bool, float]:
        """(available, how long to believe it)."""
        try:
            response = await self._http.get(KEYS_PATH)
        except httpx.HTTPError as exc:
            log.warning("management: the upstream at %s cannot be reached yet (%s)", self.where, exc)
            return False, self._retry
        if response.status_code in (401, 403):
            log.warning(
                "management is off: the gateway at %s refused the platform's gateway_key (%d)",
                self.where,
                response.status_code,
            )
            return False, self._ttl
        if not response.is_success or not _is_key_list(response):
            log.info(
                "management is off: %s is not our gateway (%s %s answered %d), so its pages are hidden",
                self.where,
                "GET",
                KEYS_PATH,
                response.status_code,
            )
            return False, self._ttl
        return True, self._ttl

    async def _get(self, path: str) -> Any:
        """The JSON of ``GET path`` with the key; management must be available."""
        if not await self.available():
            raise ManagementUnavailable()
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as exc:
            log.warning("management: the gateway at %s: %s", self.where, exc)
            raise PlatformError(f"the gateway at {self.where} cannot be reached", status=502) from None
        if response.status_code in (401, 403):
            log.warning("management is off: the gateway at %s refused the platform's gateway_key", self.where)
            self._remember(False, self._ttl)
            raise ManagementUnavailable()
        if not response.is_success:
            raise PlatformError(f"the gateway at {self.where} answered {response.status_code}", status=502)
        try:
            return response.json()
        except ValueError:
            raise PlatformError(
                f"the gateway at {self.where} answered something other than JSON", status=502
            ) from None

    async def nodes(self) -> list[dict[str, Any]]:
        """The gateway's nodes, as ``GET /api/avocado/nodes`` describes them."""
        body = await self._get(NODES_PATH)
        nodes = body.get("nodes") if isinstance(body, dict) else None
        return [node for node in nodes or [] if isinstance(node, dict) and isinstance(node.get("name"), str)]

    async def usage(self) -> list[UserUsage]:
        """Usage per user the gateway metered (``X-Avocado-User``), summed over keys."""
        body = await self._get(USAGE_PATH)
        rows = body.get("usage") if isinstance(body, dict) else None
        totals: dict[str, UserUsage] = {}
        for row in rows or []:
            if not isinstance(row, dict) or not isinstance(row.get("user"), str):
                continue
            seen = totals.get(row["user"])
            totals[row["user"]] = _add(seen, row)
        return list(totals.values())

    async def aclose(self) -> None:
        await self._http.aclose()


def _is_key_list(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("keys"), list)


def _count(row: dict[str, Any], field: str) -> int:
    value = row.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _when(row: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(row.get("last_used_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _add(seen: UserUsage | None, row: dict[str, Any]) -> UserUsage:
    when = _when(row)
    if seen is None:
        return UserUsage(
            row["user"], _count(row, "requests"), _count(row, "tokens_in"), _count(row, "tokens_out"), when
        )
    latest = max((t for t in (seen.last_used_at, when) if t is not None), default=None)
    return UserUsage(
        seen.user_id,
        seen.requests + _count(row, "requests"),
        seen.tokens_in + _count(row, "tokens_in"),
        seen.tokens_out + _count(row, "tokens_out"),
        latest,
    )
