"""The consumer's view: the newest announcement of every live node, by ``service_id``.

Newer means a higher ``sequence``: an announcement whose sequence is not above the highest seen for
its node is a duplicate or arrived late, and is ignored (also after the node went away, so a late
``online`` cannot bring back a node that said ``offline``).

A node leaves when it announces ``offline`` or when ``ttl_seconds`` pass without a newer
announcement. The TTL is counted from when *this* process received the announcement, on the
monotonic clock, rather than from its ``timestamp``: the sender's clock may be off, ours may jump,
and a delayed delivery only keeps a node a little longer. ``timestamp`` stays informative.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from avocado.discovery.messages import Announcement

__all__ = ["Registry"]

log = logging.getLogger(__name__)

_RECHECK = 0.5  # seconds between checks of a wait_for predicate when nothing changed


@dataclass(frozen=True, slots=True)
class _Entry:
    announcement: Announcement
    expires_at: float  # on the registry's clock


class Registry:
    """Live nodes; ``on_change(registry)`` runs after every accepted announcement or removal."""

    def __init__(
        self,
        *,
        on_change: Callable[[Registry], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self._clock = clock
        self._live: dict[str, _Entry] = {}
        self._highest: dict[str, int] = {}  # the highest sequence seen per node, live or gone
        self._changed = asyncio.Event()

    def apply(self, announcement: Announcement) -> bool:
        """Take ``announcement`` into account; ``False`` if it was a duplicate or stale."""
        service_id = announcement.service_id
        if announcement.sequence <= self._highest.get(service_id, 0):
            return False
        self._highest[service_id] = announcement.sequence
        if announcement.status == "offline":
            self._live.pop(service_id, None)
        else:
            self._live[service_id] = _Entry(announcement, self._clock() + announcement.ttl_seconds)
        self._notify()
        return True

    def expire(self) -> list[str]:
        """Remove the nodes whose TTL ran out; returns their ids."""
        now = self._clock()
        gone = [service_id for service_id, entry in self._live.items() if entry.expires_at <= now]
        for service_id in gone:
            del self._live[service_id]
            log.info("discovery: %s expired (no announcement within its ttl)", service_id)
        if gone:
            self._notify()
        return gone

    def get(self, service_id: str) -> Announcement | None:
        """The newest announcement of ``service_id`` if it is live."""
        entry = self._live.get(service_id)
        return entry.announcement if entry is not None and entry.expires_at > self._clock() else None

    def snapshot(self) -> list[Announcement]:
        """The live nodes (``online`` or ``draining``), by ``service_id``."""
        now = self._clock()
        return [e.announcement for _, e in sorted(self._live.items()) if e.expires_at > now]

    async def wait_for(self, predicate: Callable[[Registry], bool], timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``predicate(self)`` holds; raises ``TimeoutError`` after ``timeout`` seconds.

        The predicate is checked after every change and at least every half second (so a node whose
        TTL ran out counts as gone even before a sweep removes it).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"discovery registry: condition not met within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, _RECHECK))

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("discovery on_change callback failed")
