"""Accounts: registration, sign-in, sessions with rotating refresh tokens, passwords, roles, status.

Everything here is synchronous database work (the routes run it on worker threads): the API and
``avocado users`` share it, so an operator's command follows the same rules as an admin's click.
Password hashing runs outside database transactions: it is slow on purpose and holds no lock.

After a change that revokes sessions commits, their ids go to ``on_revoked`` (the process's
:class:`~avocado.platform.accounts.revocation.Revocations`), so their access tokens stop at once here.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.errors import (
    AccountDisabled,
    AccountPending,
    EmailTaken,
    InvalidCredentials,
    InvalidRefresh,
    InvalidReset,
    LastAdmin,
    SignupClosed,
    WeakPassword,
    WrongPassword,
)
from avocado.platform.accounts.models import (
    AuthSession,
    MfaFactor,
    PasswordReset,
    PersonalKey,
    RecoveryCode,
    RefreshToken,
    User,
)
from avocado.platform.accounts.passwords import Passwords, password_problem
from avocado.platform.accounts.tokens import TokenSigner, digest, new_token
from avocado.platform.admin.service import Audit, SiteSettings
from avocado.platform.errors import NotFound, PlatformError
from avocado.platform.pages import decode_cursor, encode_cursor

__all__ = ["AccountService", "Client", "Tokens", "UserRecord", "describe_device", "parse_stamp"]

REFRESH_PREFIX = "avr_"
RESET_PREFIX = "avp_"
_LOCK_ID = 0x61766F6361646F + 18  # the advisory lock that orders first-admin and last-admin decisions


@dataclass(frozen=True, slots=True)
class Client:
    """Who is asking, as far as the platform can tell (the address after trusted proxies)."""

    address: str
    user_agent: str = ""


CLI = Client(address="cli", user_agent="avocado users")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    name: str
    role: str
    status: str
    created_at: datetime
    last_login_at: datetime | None
    has_password: bool = True  # False: made by single sign-on, no password set yet


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_agent: str
    address: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    user: UserRecord


def _user(row: User) -> UserRecord:
    return UserRecord(
        row.id,
        row.email,
        row.name,
        row.role,
        row.status,
        row.created_at,
        row.last_login_at,
        row.password_hash is not None,
    )


def _session(row: AuthSession) -> SessionRecord:
    return SessionRecord(
        row.id, row.user_agent, row.address, row.created_at, row.last_used_at, row.expires_at
    )


def describe_device(user_agent: str) -> str:
    """``Firefox on Linux``, ``curl``, ...: enough to tell one's sessions apart."""
    agent = user_agent.lower()
    browser = next(
        (
            name
            for key, name in (
                ("edg/", "Edge"), ("opr/", "Opera"), ("firefox/", "Firefox"), ("chrome/", "Chrome"),
                ("safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"), ("python", "Python"),
                ("avocado", "avocado CLI"),
            )
            if key in agent
        ),
        None,
    )  # fmt: skip
    system = next(
        (
            name
            for key, name in (
                ("android", "Android"), ("iphone", "iOS"), ("ipad", "iPadOS"), ("windows", "Windows"),
                ("mac os", "macOS"), ("linux", "Linux"),
            )
            if key in agent
        ),
        None,
    )  # fmt: skip
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:40] if user_agent else "unknown device")


class AccountService:
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

    # -- helpers ------------------------------------------------------------------------------------

    def _serialize_roles(self, session: Session) -> None:
        """Decisions about who is (the first, the last) admin happen one at a time, across replicas."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        else:
            # pysqlite defers BEGIN to the first write, so the counts read next would be read outside
            # any transaction and another process could change them before the write: take SQLite's
            # write lock first (other writers wait on busy_timeout), as SQLAlchemy's pysqlite recipe does.
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")

    def _revoke(self, session: Session, where: ColumnElement[bool], reason: str) -> list[str]:
        ids = list(session.scalars(select(AuthSession.id).where(where, AuthSession.revoked_at.is_(None))))
        if ids:
            session.execute(
                update(AuthSession)
                .where(AuthSession.id.in_(ids))
                .values(revoked_at=self.now(), revoked_reason=reason)
            )
        return ids

    def _revoke_keys(self, session: Session, user_id: str) -> None:
        """A disabled account's personal API keys are revoked for good (enabling it again does not
        bring them back: scripts holding them were cut off for a reason)."""
        session.execute(
            update(PersonalKey)
            .where(PersonalKey.user_id == user_id, PersonalKey.revoked_at.is_(None))
            .values(revoked_at=self.now())
        )

    def _revoked(self, ids: list[str]) -> list[str]:
        if ids:
            self.on_revoked(ids)
        return ids

    def _checked_password(self, field: str, password: str, email: str) -> str:
        problem = password_problem(password, email)
        if problem is not None:
            raise WeakPassword(field, problem)
        return self.passwords.hash(password)

    # -- registration -------------------------------------------------------------------------------

    def _signed_up(
        self,
        session: Session,
        email: str,
        name: str,
        password_hash: str | None,
        client: Client,
        **detail: str,
    ) -> User:
        """A new account under the sign-up policy (the very first is an active admin), audited."""
        self._serialize_roles(session)
        first = session.scalar(select(User.id).limit(1)) is None
        policy = "open" if first else self.site.get(session, "signup_policy")
        if policy == "closed":
            raise SignupClosed()
        role, status = ("admin", "active") if first else ("user", "active" if policy == "open" else "pending")
        row = self._insert(session, email, name, password_hash, role, status)
        self.audit.record(
            session,
            "user.registered",
            actor_id=row.id,
            subject_id=row.id,
            address=client.address,
            detail={"role": role, "status": status, **detail},
        )
        return row

    def register(self, email: str, password: str, name: str, client: Client) -> UserRecord:
        """A new account: the very first is an active admin; later ones follow the sign-up policy."""
        password_hash = self._checked_password("password", password, email)
        with self._roles_lock, self._sessions.begin() as session:
            return _user(self._signed_up(session, email, name, password_hash, client))

    def register_vouched(
        self, email: str, name: str, client: Client, *, via: str, link: Callable[[Session, str], None]
    ) -> UserRecord:
        """A new account for a person another party vouches for (an OpenID provider that verified
        the e-mail), without a password (a reset link sets one). The first account is an active
        admin; later ones follow the sign-up policy, as at sign-up. ``link(session, user_id)`` runs
        in the same transaction (the identity that signs in to it)."""
        with self._roles_lock, self._sessions.begin() as session:
            row = self._signed_up(session, email, name, None, client, via=via)
            link(session, row.id)
            return _user(row)

    def create_user(
        self,
        email: str,
        password: str,
        name: str,
        role: str,
        status: str,
        *,
        actor_id: str | None,
        client: Client,
        first_is_admin: bool = False,
    ) -> UserRecord:
        """An account made by an administrator (or the CLI): any role and status, no sign-up policy.
        ``first_is_admin``: on an empty database the account is an active admin, as at sign-up."""
        password_hash = self._checked_password("password", password, email)
        with self._roles_lock, self._sessions.begin() as session:
            self._serialize_roles(session)
            if first_is_admin and session.scalar(select(User.id).limit(1)) is None:
                role, status = "admin", "active"
            row = self._insert(session, email, name, password_hash, role, status)
            self.audit.record(
                session,
                "user.created",
                actor_id=actor_id,
                subject_id=row.id,
                address=client.address,
                detail={"role": role, "status": status},
            )
            return _user(row)

    def _insert(
        self, session: Session, email: str, name: str, password_hash: str | None, role: str, status: str
    ) -> User:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise EmailTaken()
        now = self.now()
        row = User(
            id=str(uuid.uuid4()),
            email=email,
            name=name,
            password_hash=password_hash,
            role=role,
            status=status,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # the same e-mail registered a moment ago by another request
            raise EmailTaken() from None
        return row

    # -- sign-in and sessions -----------------------------------------------------------------------

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
            status, record = row.status, _user(row)
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
                record, session_id = _user(user), auth.id
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
            at, last_id = decode_cursor(cursor, (str, str))
            stamp = parse_stamp(at)
            query = query.where(
                or_(
                    AuthSession.created_at < stamp,
                    and_(AuthSession.created_at == stamp, AuthSession.id < last_id),
                )
            )
        with self._sessions() as session:
            rows = [_session(row) for row in session.scalars(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if more else None

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

    # -- profile and passwords ----------------------------------------------------------------------

    def get(self, user_id: str) -> UserRecord | None:
        with self._sessions() as session:
            row = session.get(User, user_id)
            return None if row is None else _user(row)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        """The accounts among ``user_ids`` that exist, by id."""
        wanted = sorted({user_id for user_id in user_ids if len(user_id) <= 36})
        found: dict[str, UserRecord] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(select(User).where(User.id.in_(wanted[start : start + 500])))
                found.update((row.id, _user(row)) for row in rows)
        return found

    def find(self, email: str) -> UserRecord | None:
        with self._sessions() as session:
            row = session.scalars(select(User).where(User.email == email.lower())).one_or_none()
            return None if row is None else _user(row)

    def rename(self, user_id: str, name: str) -> UserRecord:
        with self._sessions.begin() as session:
            row = session.get(User, user_id)
            if row is None:
                raise NotFound("no such user")
            row.name, row.updated_at = name, self.now()
            return _user(row)

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

    # -- administration -----------------------------------------------------------------------------

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
            at, last_id = decode_cursor(cursor, (str, str))
            stamp = parse_stamp(at)
            query = query.where(
                or_(User.created_at > stamp, and_(User.created_at == stamp, User.id > last_id))
            )
        with self._sessions() as session:
            rows = [_user(row) for row in session.scalars(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if more else None

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
            record = _user(row)
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

    def _active_admins(self, session: Session) -> int:
        return int(
            session.scalar(select(func.count()).where(User.role == "admin", User.status == "active")) or 0
        )

    def revoke_many(self, ids: Iterable[str]) -> None:
        self._revoked(list(ids))

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


def parse_stamp(value: str) -> datetime:
    from avocado.platform.errors import PlatformError

    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise PlatformError("cursor: not a cursor this list gave", status=422) from None
    if stamp.tzinfo is None:
        raise PlatformError("cursor: not a cursor this list gave", status=422)
    return stamp
