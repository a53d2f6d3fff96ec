"""What administrators do to accounts: list and search them, change a role or a status (the last
active admin keeps both; disabling ends every session and revokes the personal API keys), and turn
a user's two-factor sign-in off."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from avocado.platform.accounts.errors import LastAdmin
from avocado.platform.accounts.models import AuthSession, MfaFactor, PersonalKey, RecoveryCode, User
from avocado.platform.accounts.records import Client, UserRecord, user_record
from avocado.platform.accounts.store import AccountStore
from avocado.platform.errors import NotFound
from avocado.platform.pages import time_cursor, time_keyset

__all__ = ["Administration"]


class Administration(AccountStore):
    def list_users(
        self, status: str | None, search: str | None, cursor: str | None, limit: int
    ) -> tuple[list[UserRecord], str | None]:
        """Accounts, oldest first (a keyset on creation time and id)."""
        query = select(User).order_by(User.created_at, User.id).limit(limit + 1)
        if status is not None:
            query = query.where(User.status == status)
        if search:
            pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(User.email.like(pattern, escape="\\"), func.lower(User.name).like(pattern, escape="\\"))
            )
        if cursor is not None:
            query = query.where(time_keyset(cursor, User.created_at, User.id, newest_first=False))
        with self._sessions() as session:
            rows = [user_record(row) for row in session.scalars(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, time_cursor(rows[-1].created_at, rows[-1].id) if more else None

    def update_user(
        self, user_id: str, *, role: str | None, status: str | None, actor_id: str | None, client: Client
    ) -> UserRecord:
        """Change a role or a status; the last active admin keeps both. Disabling ends every session."""
        ids: list[str] = []
        with self._roles_lock, self._sessions.begin() as session:
            self._serialize_roles(session)
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            losing_admin = (
                row.role == "admin"
                and row.status == "active"
                and ((role is not None and role != "admin") or (status is not None and status != "active"))
            )
            if losing_admin and self._active_admins(session) <= 1:
                raise LastAdmin()
            for field, new in (("role", role), ("status", status)):
                old = getattr(row, field)
                if new is None or new == old:
                    continue
                setattr(row, field, new)
                self.audit.record(
                    session, f"user.{field}_changed", actor_id=actor_id, subject_id=row.id,
                    address=client.address, detail={"old": old, "new": new},
                )  # fmt: skip
            if status == "disabled":
                ids = self._revoke(session, AuthSession.user_id == user_id, "account_disabled")
                self._revoke_keys(session, user_id)
            row.updated_at = self.now()
            record = user_record(row)
        self._revoked(ids)
        return record

    def reset_mfa(self, user_id: str, *, actor_id: str | None, client: Client) -> bool:
        """Turn a user's two-factor sign-in off (a lost phone and lost recovery codes): their
        password alone signs in again. Whether it was on; audited either way."""
        with self._sessions.begin() as session:
            if session.get(User, user_id) is None:
                raise NotFound("no such user")
            removed = session.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id))
            was_on = removed.rowcount  # type: ignore[attr-defined]
            session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            self.audit.record(
                session, "mfa.reset", actor_id=actor_id, subject_id=user_id, address=client.address,
                detail={"was_on": bool(was_on)},
            )  # fmt: skip
        return bool(was_on)

    def _revoke_keys(self, session: Session, user_id: str) -> None:
        """A disabled account's personal API keys are revoked for good (enabling it again does not
        bring them back: scripts holding them were cut off for a reason)."""
        session.execute(
            update(PersonalKey)
            .where(PersonalKey.user_id == user_id, PersonalKey.revoked_at.is_(None))
            .values(revoked_at=self.now())
        )
