"""Accounts: registration, sign-in, sessions with rotating refresh tokens, passwords, roles, status.

Everything here is synchronous database work (the routes run it on worker threads): the API and
``avocado users`` share it, so an operator's command follows the same rules as an admin's click.
Password hashing runs outside database transactions: it is slow on purpose and holds no lock.

:class:`AccountService` is one object for its callers, built from one class per feature: new accounts
(:mod:`registration`), sign-in and sessions (:mod:`sessions`), password changes and resets
(:mod:`password_changes`), administration (:mod:`administration`), on what they share
(:mod:`store`); the records they hand out are in :mod:`records`. Here: reading accounts, my profile,
deleting my account, and purging what can no longer be used.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, or_, select
from sqlalchemy.orm import Session

from avocado.platform.accounts.administration import Administration
from avocado.platform.accounts.errors import LastAdmin, WrongPassword
from avocado.platform.accounts.models import AuthSession, PasswordReset, RefreshToken, User
from avocado.platform.accounts.password_changes import PasswordChanges
from avocado.platform.accounts.records import (
    CLI,
    Client,
    Tokens,
    UserRecord,
    describe_device,
    user_record,
)
from avocado.platform.accounts.registration import Registration
from avocado.platform.accounts.sessions import Sessions
from avocado.platform.errors import NotFound, PlatformError

__all__ = ["CLI", "AccountService", "Client", "Tokens", "UserRecord", "describe_device"]


class AccountService(Registration, Sessions, PasswordChanges, Administration):
    # -- reading accounts, my profile, deleting my account ------------------------------------------

    def get(self, user_id: str) -> UserRecord | None:
        with self._sessions() as session:
            row = session.get(User, user_id)
            return None if row is None else user_record(row)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        """The accounts among ``user_ids`` that exist, by id."""
        wanted = sorted({user_id for user_id in user_ids if len(user_id) <= 36})
        found: dict[str, UserRecord] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(select(User).where(User.id.in_(wanted[start : start + 500])))
                found.update((row.id, user_record(row)) for row in rows)
        return found

    def find(self, email: str) -> UserRecord | None:
        with self._sessions() as session:
            row = session.scalars(select(User).where(User.email == email.lower())).one_or_none()
            return None if row is None else user_record(row)

    def rename(self, user_id: str, name: str) -> UserRecord:
        with self._sessions.begin() as session:
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            row.name, row.updated_at = name, self.now()
            return user_record(row)

    def delete_account(
        self, user_id: str, password: str | None, client: Client, *, confirm_email: str | None = None
    ) -> list[str]:
        """Delete my account and everything of mine (sessions, keys, two-factor, preferences, avatar go with
        the row); the password is needed (an account without one, made by single sign-on, types its
        e-mail address instead), and the last active admin stays. The audit log keeps the event,
        under the id only."""
        with self._sessions() as session:
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            stored, email = row.password_hash, row.email
        if stored is None:
            confirmed = (confirm_email or "").strip().lower() == email
            if not confirmed:
                raise PlatformError(
                    "confirm_email: type this account's e-mail address to confirm", status=422
                )
        elif password is None:
            raise PlatformError("password: needed to delete this account", status=422)
        elif not self.passwords.verify(password, stored)[0]:
            self.audit.record_now(
                "user.delete_failed", actor_id=user_id, subject_id=user_id, address=client.address
            )
            raise WrongPassword("password")
        with self._roles_lock, self._sessions.begin() as session:
            self._serialize_roles(session)
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            if row.role == "admin" and row.status == "active" and self._active_admins(session) <= 1:
                raise LastAdmin()
            ids = list(session.scalars(select(AuthSession.id).where(AuthSession.user_id == user_id)))
            session.delete(row)
            self.audit.record(
                session, "user.deleted", actor_id=user_id, subject_id=user_id, address=client.address
            )
        return self._revoked(ids)

    # -- purging ------------------------------------------------------------------------------------

    def purge(self) -> dict[str, int]:
        """Delete what can no longer be used, and how many of each went: sessions that ended (expired
        or revoked) a day ago (or two access-token lives, if longer: replicas still learn of
        revocations from their rows until then), with their refresh tokens; refresh tokens rotated
        more than ``refresh_ttl`` ago (kept until then so that a stolen copy still ends its session);
        reset tokens used or expired."""
        now = self.now()
        ended = now - max(timedelta(days=1), timedelta(seconds=2 * self.signer.ttl))
        gone = or_(AuthSession.expires_at < ended, AuthSession.revoked_at < ended)
        with self._sessions.begin() as session:
            tokens = _deleted(
                session,
                delete(RefreshToken).where(RefreshToken.session_id.in_(select(AuthSession.id).where(gone))),
            )
            sessions = _deleted(session, delete(AuthSession).where(gone))
            tokens += _deleted(
                session, delete(RefreshToken).where(RefreshToken.rotated_at < now - self.refresh_ttl)
            )
            spent = or_(PasswordReset.used_at.is_not(None), PasswordReset.expires_at < now)
            resets = _deleted(session, delete(PasswordReset).where(spent))
        return {"sessions": sessions, "refresh_tokens": tokens, "password_resets": resets}


def _deleted(session: Session, statement: Delete) -> int:
    """Run a DELETE; how many rows it removed."""
    result = cast(
        "CursorResult[Any]", session.execute(statement, execution_options={"synchronize_session": False})
    )
    return int(result.rowcount)
