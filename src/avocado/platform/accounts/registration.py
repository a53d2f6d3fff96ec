"""New accounts: sign-up under the site's policy (the very first account is an active admin), an
account vouched for by an OpenID provider, and one made by an administrator or the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from avocado.platform.accounts.errors import EmailTaken, SignupClosed
from avocado.platform.accounts.models import User
from avocado.platform.accounts.records import Client, UserRecord, user_record
from avocado.platform.accounts.store import AccountStore

__all__ = ["Registration"]


class Registration(AccountStore):
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
            return user_record(self._signed_up(session, email, name, password_hash, client))

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
            return user_record(row)

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
            return user_record(row)

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
