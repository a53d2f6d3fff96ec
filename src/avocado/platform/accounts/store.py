"""What the accounts' database code shares: its collaborators, the lock that orders decisions about
who is an administrator, ending sessions (and telling the process which), and checking a new
password. :class:`~avocado.platform.accounts.service.AccountService` is built from its subclasses.

After a change that revokes sessions commits, their ids go to ``on_revoked`` (the process's
:class:`~avocado.platform.accounts.revocation.Revocations`), so their access tokens stop at once here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.errors import WeakPassword
from avocado.platform.accounts.models import AuthSession, User
from avocado.platform.accounts.passwords import Passwords, password_problem
from avocado.platform.accounts.tokens import TokenSigner
from avocado.platform.admin.service import Audit, SiteSettings

__all__ = ["AccountStore"]

_LOCK_ID = 0x61766F6361646F + 18  # the advisory lock that orders first-admin and last-admin decisions


class AccountStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        passwords: Passwords,
        signer: TokenSigner,
        audit: Audit,
        site: SiteSettings,
        *,
        refresh_ttl: float,
        reset_ttl: float,
        on_revoked: Callable[[list[str]], None] = lambda ids: None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.passwords = passwords
        self.signer = signer
        self.audit = audit
        self.site = site
        self.refresh_ttl = timedelta(seconds=refresh_ttl)
        self.reset_ttl = timedelta(seconds=reset_ttl)
        self.on_revoked = on_revoked
        self.now = now
        self._roles_lock = threading.Lock()  # SQLite's share of the advisory lock below

    def _serialize_roles(self, session: Session) -> None:
        """Decisions about who is (the first, the last) admin happen one at a time, across replicas."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        else:
            # pysqlite defers BEGIN to the first write, so the counts read next would be read outside
            # any transaction and another process could change them before the write: take SQLite's
            # write lock first (other writers wait on busy_timeout), as SQLAlchemy's pysqlite recipe does.
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")

    def _active_admins(self, session: Session) -> int:
        return int(
            session.scalar(select(func.count()).where(User.role == "admin", User.status == "active")) or 0
        )

    def _revoke(self, session: Session, where: ColumnElement[bool], reason: str) -> list[str]:
        ids = list(session.scalars(select(AuthSession.id).where(where, AuthSession.revoked_at.is_(None))))
        if ids:
            session.execute(
                update(AuthSession)
                .where(AuthSession.id.in_(ids))
                .values(revoked_at=self.now(), revoked_reason=reason)
            )
        return ids

    def _revoked(self, ids: list[str]) -> list[str]:
        if ids:
            self.on_revoked(ids)
        return ids

    def _checked_password(self, field: str, password: str, email: str) -> str:
        problem = password_problem(password, email)
        if problem is not None:
            raise WeakPassword(field, problem)
        return self.passwords.hash(password)
