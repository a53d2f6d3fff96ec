"""Personal API keys: a user's own keys for calling models from scripts through ``/v1``.

A key is ``avk_`` and 256 random bits, shown once when made and kept only as its SHA-256 (for the
reason ``gateway/keys/models.py`` gives: no guessing can succeed, and an indexed lookup finds it).
A key acts as its user: it works while the user is active, stops when it is revoked, when the
account is disabled (every key is revoked then, for good) or deleted (the rows go with it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import PersonalKey, User
from avocado.platform.accounts.service import Client
from avocado.platform.accounts.tokens import digest, new_token
from avocado.platform.admin.service import Audit
from avocado.platform.errors import Conflict, NotFound, Unauthorized
from avocado.platform.pages import time_cursor, time_keyset

__all__ = ["KEY_PREFIX", "KeyOwner", "KeyRecord", "PersonalKeys"]

KEY_PREFIX = "avk_"
MAX_KEYS = 50  # per user: enough for every script, not a table anyone can fill
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is for people: a write a minute is enough


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who a presented key acts for."""

    key_id: str
    user_id: str
    role: str


def _record(row: PersonalKey) -> KeyRecord:
    return KeyRecord(row.id, row.name, row.key_prefix, row.created_at, row.last_used_at)


class PersonalKeys:
    def __init__(
        self, sessions: sessionmaker[Session], audit: Audit, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._sessions = sessions
        self.audit = audit
        self.now = now

    def create(self, user_id: str, name: str, client: Client) -> tuple[KeyRecord, str]:
        """A new key and its secret, which is not kept and cannot be shown again."""
        secret, now = new_token(KEY_PREFIX), self.now()
        with self._sessions.begin() as session:
            live = session.scalars(
                select(PersonalKey.id).where(PersonalKey.user_id == user_id, PersonalKey.revoked_at.is_(None))
            ).all()
            if len(live) >= MAX_KEYS:
                raise Conflict(f"at most {MAX_KEYS} keys per account: revoke one first")
            row = PersonalKey(
                id=str(uuid.uuid4()),
                user_id=user_id,
                name=name,
                key_hash=digest(secret),
                key_prefix=secret[:12],
                created_at=now,
            )
            session.add(row)
            self.audit.record(
                session, "api_key.created", actor_id=user_id, subject_id=user_id, address=client.address,
                detail={"key_id": row.id, "name": name},
            )  # fmt: skip
            return _record(row), secret

    def list(self, user_id: str, cursor: str | None, limit: int) -> tuple[list[KeyRecord], str | None]:
        """The user's live keys, newest first (a keyset on creation time and id)."""
        query = (
            select(PersonalKey)
            .where(PersonalKey.user_id == user_id, PersonalKey.revoked_at.is_(None))
            .order_by(PersonalKey.created_at.desc(), PersonalKey.id.desc())
            .limit(limit + 1)
        )
        if cursor is not None:
            query = query.where(time_keyset(cursor, PersonalKey.created_at, PersonalKey.id))
        with self._sessions() as session:
            rows = [_record(row) for row in session.scalars(query)]
        more, rows = len(rows) > limit, rows[:limit]
        return rows, time_cursor(rows[-1].created_at, rows[-1].id) if more else None

    def revoke(self, user_id: str, key_id: str, client: Client) -> None:
        """Revoke one of the user's keys; another user's key, or none, is a 404."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(PersonalKey)
                .where(
                    PersonalKey.id == key_id, PersonalKey.user_id == user_id, PersonalKey.revoked_at.is_(None)
                )
                .values(revoked_at=self.now())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFound("no such API key")
            self.audit.record(
                session, "api_key.revoked", actor_id=user_id, subject_id=user_id, address=client.address,
                detail={"key_id": key_id},
            )  # fmt: skip

    def authenticate(self, secret: str) -> KeyOwner:
        """The live key ``secret`` is and its active user, or ``401``."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
            raise Unauthorized("invalid API key: make one in your profile (API keys)")
        now = self.now()
        with self._sessions() as session:
            found = session.execute(
                select(PersonalKey, User.role, User.status)
                .join(User, User.id == PersonalKey.user_id)
                .where(PersonalKey.key_hash == digest(secret))
            ).one_or_none()
            if found is None or found[0].revoked_at is not None:
                raise Unauthorized("invalid or revoked API key")
            key, role, status = found
            if status != "active":
                raise Unauthorized("this account may not use the API now")
            owner, last = KeyOwner(key.id, key.user_id, role), key.last_used_at
        if last is None or now - last >= _TOUCH_EVERY:
            with self._sessions.begin() as session:
                session.execute(
                    update(PersonalKey).where(PersonalKey.id == owner.key_id).values(last_used_at=now)
                )
        return owner
