"""Keys in the database, and the two things the request path needs from them, kept off the database.

- :meth:`KeyService.lookup` (and :meth:`~KeyService.verify`) find a key by the SHA-256 of what the
  client sent. Answers, found or not, are cached in memory for ``cache_ttl`` seconds (0: no cache),
  so a busy key costs one query per TTL. A revocation made through this service drops the cached
  answer at once; one made elsewhere (another replica) takes effect within the TTL.
- :meth:`KeyService.record_usage` adds to counters in memory; :meth:`~KeyService.flush` writes
  them (``requests = requests + n``, so replicas add up), every ``flush_interval`` seconds once
  :meth:`~KeyService.start` ran, and on :meth:`~KeyService.close`. Counters in the database lag by
  up to that interval; a crash loses at most that interval's counts. A request made for a user
  named in ``X-Avocado-User`` (by a platform) also counts for that user under its key, in
  ``api_key_user_usage`` (:meth:`KeyService.user_usage`).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import secrets
import string
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.gateway.keys.models import ApiKey, KeyUserUsage
from avocado.gateway.keys.schemas import KeyCreate, KeyState
from avocado.gateway.limits import KeyLimits  # one class for a key's limits, here and in the limiter
from avocado.names import model_allowed

__all__ = [
    "KEY_PREFIX",
    "MASTER_KEY_ID",
    "KeyLimits",
    "KeyRecord",
    "KeyService",
    "UserUsage",
    "hash_key",
    "new_key",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "avk-"
_KEY_ALPHABET = string.ascii_letters + string.digits
_KEY_LENGTH = 40  # random characters after the prefix: 40 * log2(62) ≈ 238 bits
_SHOWN = len(KEY_PREFIX) + 4  # what lists show of a key: "avk-3F9a"
_MAX_KEY_LENGTH = 256  # longer than any key we issue: rejected without hashing or a query
MASTER_KEY_ID = "master"  # the master key's name in api_key_user_usage (it has no row of its own)


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_LENGTH))


def hash_key(full_key: str) -> str:
    """SHA-256 hex of the key (see :mod:`avocado.gateway.keys.models` for why not argon2)."""
    return hashlib.sha256(full_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as the service hands it out: everything but its hash."""

    id: str
    name: str
    key_prefix: str
    allowed_models: tuple[str, ...] | None  # None: every model
    limits: KeyLimits  # pass as is to gateway.limits.Limiter.acquire(id, limits)
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    requests: int
    tokens_in: int
    tokens_out: int

    def state(self, now: datetime) -> KeyState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def allows(self, model: str) -> bool:
        """Whether the key may use ``model`` (``smollm2`` and ``smollm2:latest`` are one model)."""
        return self.allowed_models is None or model_allowed(model, self.allowed_models)


def _record(row: ApiKey) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        allowed_models=None if row.allowed_models is None else tuple(row.allowed_models),
        limits=KeyLimits(rpm=row.rpm_limit, tpm=row.tpm_limit, max_parallel=row.max_parallel),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        requests=row.requests,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
    )


@dataclass(frozen=True, slots=True)
class UserUsage:
    """What one key did for one user it named."""

    key_id: str
    user_id: str
    requests: int
    tokens_in: int
    tokens_out: int
    last_used_at: datetime


@dataclass(slots=True)
class _Usage:
    requests: int
    tokens_in: int
    tokens_out: int
    last_used: datetime

    def add(self, other: _Usage) -> None:
        self.requests += other.requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.last_used = max(self.last_used, other.last_used)


class _Cache:
    """Lookup answers by key hash, each good for ``ttl`` seconds; at most ``size`` of them."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, KeyRecord | None]:
        """``(True, answer)`` while a fresh answer is cached, else ``(False, None)``."""
        if self.ttl <= 0:
            return False, None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return False, None
            if entry[0] <= self.clock():
                del self._entries[digest]
                return False, None
            return True, entry[1]

    def put(self, digest: str, record: KeyRecord | None) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[digest] = (self.clock() + self.ttl, record)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)


class KeyService:
    """Create, list, revoke and verify keys; count their usage."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._cache = _Cache(cache_ttl, cache_size, clock)
        self.flush_interval = flush_interval
        self.now = now
        # (key id, None): the key's own counters; (key id or "master", user): that user's under it
        self._pending: dict[tuple[str, str | None], _Usage] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- admin --------------------------------------------------------------------------------------

    def create(self, spec: KeyCreate) -> tuple[KeyRecord, str]:
        """Make a key; returns its record and the full key (not stored: show it once)."""
        key, now = new_key(), self.now()
        row = ApiKey(
            id=str(uuid.uuid4()),
            name=spec.name,
            key_hash=hash_key(key),
            key_prefix=key[:_SHOWN],
            allowed_models=spec.models,
            rpm_limit=spec.rpm,
            tpm_limit=spec.tpm,
            max_parallel=spec.max_parallel,
            expires_at=spec.expiry(now),
            created_at=now,
            requests=0,
            tokens_in=0,
            tokens_out=0,
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            record = _record(row)
        return record, key

    def list(self) -> builtins.list[KeyRecord]:
        """Every key, revoked and expired ones included, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
            return [_record(row) for row in rows]

    def get(self, key_id: str) -> KeyRecord | None:
        with self._sessions() as session:
            row = session.get(ApiKey, key_id)
            return None if row is None else _record(row)

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke a key for good (again: no change); ``None`` if there is no such key."""
        with self._sessions.begin() as session:
            row = session.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = self.now()
            record, digest = _record(row), row.key_hash
        self._cache.drop(digest)
        return record

    # -- request path -------------------------------------------------------------------------------

    @staticmethod
    def _digest(full_key: str) -> str | None:
        """The key's hash, or ``None`` for what cannot be one of our keys (no query for those)."""
        if not full_key.startswith(KEY_PREFIX) or len(full_key) > _MAX_KEY_LENGTH:
            return None
        return hash_key(full_key)

    def _load(self, digest: str) -> KeyRecord | None:
        with self._sessions() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
            record = None if row is None else _record(row)
        self._cache.put(digest, record)
        return record

    def lookup(self, full_key: str) -> KeyRecord | None:
        """The key's record whatever its state (revoked, expired), or ``None`` if unknown."""
        digest = self._digest(full_key)
        if digest is None:
            return None
        hit, record = self._cache.get(digest)
        return record if hit else self._load(digest)

    async def alookup(self, full_key: str) -> KeyRecord | None:
        """:meth:`lookup` for the event loop: a cached answer costs no thread, a query runs in one."""
        digest = self._digest(full_key)
        if digest is None:
            return None
        hit, record = self._cache.get(digest)
        return record if hit else await asyncio.to_thread(self._load, digest)

    def verify(self, full_key: str) -> KeyRecord | None:
        """The key's record if it may be used now: known, not revoked, not expired."""
        record = self.lookup(full_key)
        return record if record is not None and record.state(self.now()) == "active" else None

    # -- usage --------------------------------------------------------------------------------------

    def record_usage(
        self, key_id: str | None, tokens_in: int, tokens_out: int, user: str | None = None
    ) -> None:
        """Count one request of ``key_id`` (``None``: the master key), and of ``user`` under it when
        the caller named one (in memory; written by the next :meth:`flush`)."""
        usage = _Usage(1, max(0, tokens_in), max(0, tokens_out), self.now())
        targets: list[tuple[str, str | None]] = []
        if key_id is not None:
            targets.append((key_id, None))
        if user is not None:
            targets.append((key_id or MASTER_KEY_ID, user))
        with self._pending_lock:
            for target in targets:
                self._add(self._pending, target, usage)

    @staticmethod
    def _add(
        pending: dict[tuple[str, str | None], _Usage], target: tuple[str, str | None], usage: _Usage
    ) -> None:
        known = pending.get(target)
        if known is None:
            pending[target] = _Usage(usage.requests, usage.tokens_in, usage.tokens_out, usage.last_used)
        else:
            known.add(usage)

    def _restore(self, pending: dict[tuple[str, str | None], _Usage]) -> None:
        """Put counts that could not be written back, to go with the next flush."""
        with self._pending_lock:
            for target, usage in pending.items():
                self._add(self._pending, target, usage)

    def flush(self) -> int:
        """Write the counted usage; returns how many counters got updates. Failed writes are kept."""
        with self._flush_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return 0
            try:
                with self._sessions.begin() as session:
                    for (key_id, user), usage in pending.items():
                        if user is None:
                            self._write_key(session, key_id, usage)
                        else:
                            self._write_user(session, key_id, user, usage)
            except BaseException:
                self._restore(pending)
                raise
            return len(pending)

    @staticmethod
    def _write_key(session: Session, key_id: str, usage: _Usage) -> None:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(
                requests=ApiKey.requests + usage.requests,
                tokens_in=ApiKey.tokens_in + usage.tokens_in,
                tokens_out=ApiKey.tokens_out + usage.tokens_out,
                last_used_at=usage.last_used,
            )
        )

    @staticmethod
    def _write_user(session: Session, key_id: str, user: str, usage: _Usage) -> None:
        """Add to the (key, user) row, making it if needed: one upsert, so replicas add up."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(KeyUserUsage).values(
            key_id=key_id,
            user_id=user,
            requests=usage.requests,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            last_used_at=usage.last_used,
        )
        table = KeyUserUsage.__table__
        upsert: Insert = statement.on_conflict_do_update(
            index_elements=[table.c.key_id, table.c.user_id],
            set_={
                "requests": table.c.requests + statement.excluded.requests,
                "tokens_in": table.c.tokens_in + statement.excluded.tokens_in,
                "tokens_out": table.c.tokens_out + statement.excluded.tokens_out,
                "last_used_at": statement.excluded.last_used_at,
            },
        )
        session.execute(upsert)

    def user_usage(self, user: str | None = None, key_id: str | None = None) -> builtins.list[UserUsage]:
        """Usage per key and user (written by the flushes so far), most requests first."""
        query = select(KeyUserUsage).order_by(
            KeyUserUsage.requests.desc(), KeyUserUsage.key_id, KeyUserUsage.user_id
        )
        if user is not None:
            query = query.where(KeyUserUsage.user_id == user)
        if key_id is not None:
            query = query.where(KeyUserUsage.key_id == key_id)
        with self._sessions() as session:
            return [
                UserUsage(
                    row.key_id, row.user_id, row.requests, row.tokens_in, row.tokens_out, row.last_used_at
                )
                for row in session.scalars(query)
            ]

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:
                log.exception("could not write API key usage; will retry")

    def start(self) -> None:
        """Flush every ``flush_interval`` seconds from a background thread, until :meth:`close`."""
        if self._flusher is None:
            self._stop.clear()
            self._flusher = threading.Thread(
                target=self._flush_periodically, name="avocado-key-usage", daemon=True
            )
            self._flusher.start()

    def close(self) -> None:
        """Stop the background flushes and write what is left."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        try:
            self.flush()
        except Exception:
            log.exception("could not write API key usage at shutdown")
