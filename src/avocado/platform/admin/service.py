"""The audit log and the settings store, shared by every domain.

:class:`Audit` writes an event in the caller's transaction (the change and its record commit
together) and reads keyset pages, newest first. :class:`SiteSettings` is the one place settings
changed at run time live (the sign-up policy first); every change is audited with its old and new
value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.admin.models import AuditEvent, SiteSetting
from avocado.platform.errors import PlatformError
from avocado.platform.pages import decode_cursor, encode_cursor

__all__ = ["DEFAULTS", "SIGNUP_POLICIES", "Audit", "AuditFilter", "SiteSettings"]

SIGNUP_POLICIES = ("approval", "open", "closed")
DEFAULTS: dict[str, Any] = {
    "signup_policy": "approval",
    "retention_archived_days": None,  # conversations: see conversations/retention.py
    "max_conversations_per_user": None,
}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor_id: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Audit:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def record(
        self,
        session: Session,
        action: str,
        *,
        actor_id: str | None = None,
        subject_id: str | None = None,
        address: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an event to ``session``'s transaction."""
        session.add(
            AuditEvent(
                at=self.now(),
                action=action,
                actor_id=actor_id,
                subject_id=subject_id,
                address=address,
                detail=dict(detail) if detail else None,
            )
        )

    def record_now(self, action: str, **fields: Any) -> None:
        """An event on its own transaction (a failed sign-in changes nothing else)."""
        with self._sessions.begin() as session:
            self.record(session, action, **fields)

    def page(self, where: AuditFilter, cursor: str | None, limit: int) -> tuple[list[AuditEvent], str | None]:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
        if where.action is not None:
            query = query.where(AuditEvent.action == where.action)
        if where.actor_id is not None:
            query = query.where(AuditEvent.actor_id == where.actor_id)
        if where.subject_id is not None:
            query = query.where(AuditEvent.subject_id == where.subject_id)
        if where.since is not None:
            query = query.where(AuditEvent.at >= where.since)
        if where.until is not None:
            query = query.where(AuditEvent.at < where.until)
        if cursor is not None:
            (last_id,) = decode_cursor(cursor, (int,))
            query = query.where(AuditEvent.id < last_id)
        with self._sessions() as session:
            rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor([rows[-1].id]) if more else None


class SiteSettings:
    """Settings kept in the database, with their defaults; ``production`` forbids an open sign-up."""

    def __init__(self, sessions: sessionmaker[Session], audit: Audit, *, production: bool = False) -> None:
        self._sessions = sessions
        self._audit = audit
        self.production = production

    def get(self, session: Session, key: str) -> Any:
        row = session.get(SiteSetting, key)
        return DEFAULTS[key] if row is None else row.value

    def all(self) -> dict[str, Any]:
        with self._sessions() as session:
            stored = {row.key: row.value for row in session.scalars(select(SiteSetting))}
        return {key: stored.get(key, default) for key, default in DEFAULTS.items()}

    def check(self, key: str, value: Any) -> None:
        if key not in DEFAULTS:
            raise PlatformError(f"{key}: no such setting", status=422)
        if key == "signup_policy":
            if value not in SIGNUP_POLICIES:
                raise PlatformError(f"signup_policy: must be one of {', '.join(SIGNUP_POLICIES)}", status=422)
            if value == "open" and self.production:
                raise PlatformError(
                    "signup_policy: production mode does not allow sign-up open to all", status=422
                )

    def update(
        self, changes: Mapping[str, Any], *, actor_id: str | None, address: str | None
    ) -> dict[str, Any]:
        """Apply ``changes`` (each checked first, all or nothing), audit each real change."""
        for key, value in changes.items():
            self.check(key, value)
        now = self._audit.now()
        with self._sessions.begin() as session:
            for key, value in changes.items():
                old = self.get(session, key)
                if old == value:
                    continue
                row = session.get(SiteSetting, key)
                if row is None:
                    session.add(SiteSetting(key=key, value=value, updated_at=now, updated_by=actor_id))
                else:
                    row.value, row.updated_at, row.updated_by = value, now, actor_id
                self._audit.record(
                    session,
                    "settings.changed",
                    actor_id=actor_id,
                    address=address,
                    detail={"key": key, "old": old, "new": value},
                )
        return self.all()
