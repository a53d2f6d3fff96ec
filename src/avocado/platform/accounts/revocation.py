"""Which sessions were revoked lately, asked on every authenticated request without a query.

An access token is checked against this set (a dictionary lookup); a revoked session's tokens stop
working at once in the process that revoked it, and within seconds everywhere else:

- every process reads back the sessions revoked lately (``revoked_at`` is indexed) every
  ``poll`` seconds, so revocations made by another replica or by ``avocado users`` on the database
  reach it without anything else running;
- with Redis configured, a revocation is also published on a channel every replica listens to, so
  they learn of it at once; the poll stays as the safety net for messages missed while
  disconnected.

An entry is kept for ``ttl`` (the access tokens' lifetime) past its revocation: after that every
token of the session has expired on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import AuthSession

__all__ = ["CHANNEL", "Revocations"]

log = logging.getLogger(__name__)

CHANNEL = "avocado:platform:revoked-sessions"
_OVERLAP = 30.0  # seconds each poll looks back past the previous one (clocks of replicas differ)


class Revocations:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        ttl: float,
        poll: float,
        redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self.ttl = ttl
        self.poll = poll
        self._redis_url = redis_url
        self._clock = clock
        self._revoked: dict[str, float] = {}  # session id -> when the entry may go (clock time)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing: asyncio.Queue[list[str]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._since = utcnow() - timedelta(seconds=ttl + _OVERLAP)

    def is_revoked(self, session_id: str) -> bool:
        until = self._revoked.get(session_id)
        return until is not None and until > self._clock()

    def add(self, session_ids: Iterable[str], *, publish: bool = True) -> None:
        """Note ``session_ids`` as revoked here, and (with Redis) tell the other replicas. Thread-safe."""
        ids = list(session_ids)
        if not ids:
            return
        until = self._clock() + self.ttl + self.poll
        with self._lock:
            for session_id in ids:
                self._revoked[session_id] = until
        if publish and self._outgoing is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._outgoing.put_nowait, ids)

    def forget_expired(self) -> None:
        now = self._clock()
        with self._lock:
            for session_id in [sid for sid, until in self._revoked.items() if until <= now]:
                del self._revoked[session_id]

    def poll_once(self) -> int:
        """Read the sessions revoked since the last poll (with some overlap); how many there were."""
        started = utcnow()
        with self._sessions() as session:
            rows = session.scalars(select(AuthSession.id).where(AuthSession.revoked_at >= self._since)).all()
        self.add(rows, publish=False)
        self._since = started - timedelta(seconds=_OVERLAP)
        self.forget_expired()
        return len(rows)

    # -- background ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read what was revoked lately, then keep up: the poll, and Redis when configured."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.poll_once)
        self._tasks.append(asyncio.create_task(self._poll_forever(), name="platform-revocations-poll"))
        if self._redis_url is not None:
            self._outgoing = asyncio.Queue()
            redis = Redis.from_url(self._redis_url)
            self._tasks.append(asyncio.create_task(self._publish(redis), name="platform-revocations-pub"))
            self._tasks.append(asyncio.create_task(self._listen(redis), name="platform-revocations-sub"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._outgoing = None

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception as exc:
                log.warning("could not read revoked sessions: %s", exc)

    async def _publish(self, redis: Redis) -> None:
        assert self._outgoing is not None
        try:
            while True:
                ids = await self._outgoing.get()
                try:
                    await redis.publish(CHANNEL, ",".join(ids))
                except Exception as exc:  # the poll still carries it to the other replicas
                    log.warning("could not publish revoked sessions to Redis: %s", exc)
        finally:
            await redis.aclose()

    async def _listen(self, redis: Redis) -> None:
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        data = message.get("data")
                        if isinstance(data, bytes):
                            self.add(data.decode().split(","), publish=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lost Redis revocation channel (%s); polling meanwhile, retrying", exc)
                await asyncio.sleep(min(self.poll, 5.0))
