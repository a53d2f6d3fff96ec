"""Signing in and sessions: a password checked (audited either way), a session started with a
rotating refresh token, refreshed (a spent token presented again ends its session), listed and ended
(one, or all: "sign out everywhere")."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, select, update

from avocado.platform.accounts.errors import (
    AccountDisabled,
    AccountPending,
    InvalidCredentials,
    InvalidRefresh,
)
from avocado.platform.accounts.models import AuthSession, RefreshToken, User
from avocado.platform.accounts.records import (
    Client,
    SessionRecord,
    Tokens,
    UserRecord,
    describe_device,
    session_record,
    user_record,
)
from avocado.platform.accounts.store import AccountStore
from avocado.platform.accounts.tokens import digest, new_token
from avocado.platform.errors import NotFound
from avocado.platform.pages import time_cursor, time_keyset

__all__ = ["REFRESH_PREFIX", "Sessions"]

REFRESH_PREFIX = "avr_"


class Sessions(AccountStore):
    def authenticate(self, email: str, password: str, client: Client) -> UserRecord:
        """The account behind ``email`` and ``password`` if it may sign in; audited either way."""
        with self._sessions() as session:
            row = session.scalars(select(User).where(User.email == email)).one_or_none()
            user_id, stored = (row.id, row.password_hash) if row is not None else (None, None)
        if user_id is None:
            self.passwords.waste_time(password)
            self.audit.record_now("signin.failed", address=client.address, detail={"email": email})
            raise InvalidCredentials()
        matches, new_hash = self.passwords.verify(password, stored)
        if not matches:
            self.audit.record_now(
                "signin.failed", subject_id=user_id, address=client.address, detail={"email": email}
            )
            raise InvalidCredentials()
        with self._sessions.begin() as session:
            row = session.get(User, user_id)
            if row is None:  # deleted while the password was checked
                raise InvalidCredentials()
            if row.status != "active":
                self.audit.record(
                    session, "signin.refused", subject_id=row.id, address=client.address,
                    detail={"status": row.status},
                )  # fmt: skip
            elif new_hash is not None:
                row.password_hash = new_hash  # costs raised since it was made: upgraded in passing
            status, record = row.status, user_record(row)
        if status == "pending":
            raise AccountPending()
        if status == "disabled":
            raise AccountDisabled()
        return record

    def start_session(self, user: UserRecord, client: Client, *, via: str | None = None) -> Tokens:
        """A new session for ``user`` (already authenticated: by password, code or ``via`` a provider)."""
        now = self.now()
        refresh = new_token(REFRESH_PREFIX)
        with self._sessions.begin() as session:
            row = AuthSession(
                id=str(uuid.uuid4()),
                user_id=user.id,
                created_at=now,
                last_used_at=now,
                expires_at=now + self.refresh_ttl,
                user_agent=client.user_agent[:300],
                address=client.address[:64],
            )
            session.add(row)
            session.flush()
            session.add(RefreshToken(token_hash=digest(refresh), session_id=row.id, created_at=now))
            session.execute(update(User).where(User.id == user.id).values(last_login_at=now))
            self.audit.record(
                session,
                "signin.succeeded",
                actor_id=user.id,
                subject_id=user.id,
                address=client.address,
                detail={
                    "session_id": row.id,
                    "device": describe_device(client.user_agent),
                    **({"via": via} if via else {}),
                },
            )
            session_id = row.id
        access, expires_in = self.signer.issue(user.id, session_id, user.role)
        return Tokens(access, expires_in, refresh, session_id, user)

    def refresh(self, refresh_token: str, client: Client) -> Tokens:
        """A new token pair for a live session; the token given is spent. A spent token presented
        again means it was copied: the whole session ends (RFC 9700 §4.14.2)."""
        token_hash, now = digest(refresh_token), self.now()
        replacement = new_token(REFRESH_PREFIX)
        reused: tuple[str, str] | None = None
        with self._sessions.begin() as session:
            token = session.get(RefreshToken, token_hash)
            auth = session.get(AuthSession, token.session_id) if token is not None else None
            if token is None or auth is None:
                raise InvalidRefresh("invalid refresh token: sign in again")
            if auth.revoked_at is not None:
                raise InvalidRefresh("this session has ended: sign in again")
            spent = session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == token_hash, RefreshToken.rotated_at.is_(None))
                .values(rotated_at=now)
            )
            if spent.rowcount == 0:  # type: ignore[attr-defined]
                reused = (auth.id, auth.user_id)
            elif auth.expires_at <= now:
                raise InvalidRefresh("this session expired: sign in again")
            else:
                user = session.get(User, auth.user_id)
                if user is None or user.status != "active":
                    raise InvalidRefresh("this account may not sign in now")
                auth.last_used_at, auth.expires_at = now, now + self.refresh_ttl
                auth.address, auth.user_agent = (
                    client.address[:64],
                    client.user_agent[:300] or auth.user_agent,
                )
                session.add(RefreshToken(token_hash=digest(replacement), session_id=auth.id, created_at=now))
                record, session_id = user_record(user), auth.id
        if reused is not None:
            self._end_reused_family(*reused, client)
            raise InvalidRefresh("this refresh token was already used: the session was ended for safety")
        access, expires_in = self.signer.issue(record.id, session_id, record.role)
        return Tokens(access, expires_in, replacement, session_id, record)

    def _end_reused_family(self, session_id: str, user_id: str, client: Client) -> None:
        with self._sessions.begin() as session:
            ids = self._revoke(session, AuthSession.id == session_id, "refresh_token_reused")
            self.audit.record(
                session, "session.reuse_detected", subject_id=user_id, address=client.address,
                detail={"session_id": session_id},
            )  # fmt: skip
        self._revoked(ids)

    def session_of_refresh(self, refresh_token: str) -> tuple[str, str] | None:
        """``(session id, user id)`` of a refresh token, spent or not; ``None`` for an unknown one."""
        with self._sessions() as session:
            token = session.get(RefreshToken, digest(refresh_token))
            auth = session.get(AuthSession, token.session_id) if token is not None else None
            return None if auth is None else (auth.id, auth.user_id)

    def sign_out(self, user_id: str, session_id: str, client: Client) -> None:
        with self._sessions.begin() as session:
            ids = self._revoke(
                session, and_(AuthSession.id == session_id, AuthSession.user_id == user_id), "signed_out"
            )
            if ids:
                self.audit.record(
                    session, "signout", actor_id=user_id, subject_id=user_id, address=client.address,
                    detail={"session_id": session_id},
                )  # fmt: skip
        self._revoked(ids)

    def list_sessions(
        self, user_id: str, cursor: str | None, limit: int
    ) -> tuple[list[SessionRecord], str | None]:
        """The user's live sessions, newest first."""
        query = (
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > self.now(),
            )
            .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())
            .limit(limit + 1)
        )
        if cursor is not None:
            query = query.where(time_keyset(cursor, AuthSession.created_at, AuthSession.id))
        with self._sessions() as session:
            rows = [session_record(row) for row in session.scalars(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, time_cursor(rows[-1].created_at, rows[-1].id) if more else None

    def revoke_session(self, user_id: str, session_id: str, *, actor_id: str, client: Client) -> None:
        """End one of ``user_id``'s sessions; someone else's (or none) is a 404."""
        with self._sessions.begin() as session:
            ids = self._revoke(
                session, and_(AuthSession.id == session_id, AuthSession.user_id == user_id), "revoked"
            )
            if not ids:
                raise NotFound("no such session")
            self.audit.record(
                session, "session.revoked", actor_id=actor_id, subject_id=user_id, address=client.address,
                detail={"session_id": session_id},
            )  # fmt: skip
        self._revoked(ids)

    def revoke_all(
        self, user_id: str, *, actor_id: str | None, client: Client, keep: str | None = None
    ) -> list[str]:
        """End every session of ``user_id`` (but ``keep``): "sign out everywhere"."""
        where = AuthSession.user_id == user_id
        if keep is not None:
            where = and_(where, AuthSession.id != keep)
        with self._sessions.begin() as session:
            ids = self._revoke(session, where, "signed_out_everywhere")
            self.audit.record(
                session, "session.revoked_all", actor_id=actor_id, subject_id=user_id, address=client.address,
                detail={"sessions": len(ids)},
            )  # fmt: skip
        return self._revoked(ids)
