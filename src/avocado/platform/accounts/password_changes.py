"""Changing a password (the current one is needed; my other sessions end) and resetting one with a
one-time token from a reset link (every session ends). Either way, reset links issued before stop
working."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, update
from sqlalchemy.orm import Session

from avocado.platform.accounts.errors import InvalidReset, WrongPassword
from avocado.platform.accounts.models import AuthSession, PasswordReset, User
from avocado.platform.accounts.records import Client
from avocado.platform.accounts.store import AccountStore
from avocado.platform.accounts.tokens import digest, new_token
from avocado.platform.errors import NotFound

__all__ = ["RESET_PREFIX", "PasswordChanges"]

RESET_PREFIX = "avp_"


class PasswordChanges(AccountStore):
    def change_password(
        self, user_id: str, session_id: str, current: str, new: str, client: Client
    ) -> list[str]:
        """Needs the current password; every other session of the user ends."""
        with self._sessions() as session:
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            stored, email = row.password_hash, row.email
        if not self.passwords.verify(current, stored)[0]:
            self.audit.record_now(
                "password.change_failed", actor_id=user_id, subject_id=user_id, address=client.address
            )
            raise WrongPassword()
        new_hash = self._checked_password("new_password", new, email)
        with self._sessions.begin() as session:
            self._set_password(session, user_id, new_hash)
            ids = self._revoke(
                session,
                and_(AuthSession.user_id == user_id, AuthSession.id != session_id),
                "password_changed",
            )
            self.audit.record(
                session, "password.changed", actor_id=user_id, subject_id=user_id, address=client.address,
                detail={"sessions_ended": len(ids)},
            )  # fmt: skip
        return self._revoked(ids)

    def _set_password(self, session: Session, user_id: str, password_hash: str) -> None:
        now = self.now()
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
        )
        # A reset link issued before the change must not undo it.
        session.execute(
            update(PasswordReset)
            .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
            .values(used_at=now)
        )

    def issue_reset(self, user_id: str, *, actor_id: str | None, client: Client) -> tuple[str, datetime]:
        """A one-time reset token for ``user_id`` and when it expires (the link is the caller's)."""
        token, now = new_token(RESET_PREFIX), self.now()
        expires = now + self.reset_ttl
        with self._sessions.begin() as session:
            if session.get(User, user_id) is None:
                raise NotFound("no such user")
            session.add(
                PasswordReset(token_hash=digest(token), user_id=user_id, created_at=now, expires_at=expires)
            )
            self.audit.record(
                session,
                "password.reset_issued",
                actor_id=actor_id,
                subject_id=user_id,
                address=client.address,
            )
        return token, expires

    def reset_password(self, token: str, new: str, client: Client) -> list[str]:
        """Set a new password with a reset token (once, before it expires); every session ends."""
        token_hash, now = digest(token), self.now()
        with self._sessions() as session:
            reset = session.get(PasswordReset, token_hash)
            if reset is None or reset.used_at is not None or reset.expires_at <= now:
                raise InvalidReset()
            user = session.get(User, reset.user_id)
            if user is None:
                raise InvalidReset()
            user_id, email = user.id, user.email
        new_hash = self._checked_password("password", new, email)
        with self._sessions.begin() as session:
            spent = session.execute(
                update(PasswordReset)
                .where(PasswordReset.token_hash == token_hash, PasswordReset.used_at.is_(None))
                .values(used_at=now)
            )
            if spent.rowcount == 0:  # type: ignore[attr-defined]  # used by a request a moment ago
                raise InvalidReset()
            self._set_password(session, user_id, new_hash)
            ids = self._revoke(session, AuthSession.user_id == user_id, "password_reset")
            self.audit.record(session, "password.reset", subject_id=user_id, address=client.address)
        return self._revoked(ids)
