"""TOTP two-factor sign-in (RFC 6238, with ``pyotp``) and one-time recovery codes.

Enrolment makes a secret and its ``otpauth://`` URI (for an authenticator app's QR code); the
first good code confirms it, turns two-factor sign-in on and hands out ten recovery codes, shown
that once and kept as hashes. A code is accepted one step either side of now (clocks drift), and
once: the step of the last accepted code is kept, so a code seen over a shoulder cannot be replayed.
Turning it off needs a code (or a recovery code) or the password. Every change is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import MfaFactor, RecoveryCode, User
from avocado.platform.accounts.passwords import Passwords
from avocado.platform.accounts.service import Client
from avocado.platform.admin.service import Audit
from avocado.platform.errors import Conflict, NotFound, PlatformError

__all__ = ["ISSUER", "Enrolment", "Mfa", "MfaStatus", "WrongCode"]

ISSUER = "Avocado"  # what authenticator apps show above the code
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes are read off paper


class WrongCode(PlatformError):
    def __init__(self) -> None:
        super().__init__("code: wrong or already used code", status=403)


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class MfaStatus:
    enabled: bool
    pending: bool  # enrolled, not confirmed yet
    recovery_codes_left: int


def _normal(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _code_hash(user_id: str, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{_normal(code)}".encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))  # ≈ 50 bits
    return f"{raw[:5]}-{raw[5:]}"


class Mfa:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        passwords: Passwords,
        audit: Audit,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.passwords = passwords
        self.audit = audit
        self.now = now

    def status(self, user_id: str) -> MfaStatus:
        with self._sessions() as session:
            factor = session.get(MfaFactor, user_id)
            left = session.scalar(
                select(func.count()).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            )
        confirmed = factor is not None and factor.confirmed_at is not None
        return MfaStatus(confirmed, factor is not None and not confirmed, int(left or 0) if confirmed else 0)

    def enabled(self, user_id: str) -> bool:
        with self._sessions() as session:
            confirmed = session.scalar(select(MfaFactor.confirmed_at).where(MfaFactor.user_id == user_id))
        return confirmed is not None

    def enrol(self, user_id: str, client: Client) -> Enrolment:
        """A new secret (replacing an unconfirmed one); ``409`` while two-factor sign-in is on."""
        secret = pyotp.random_base32()
        with self._sessions.begin() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("no such user")
            factor = session.get(MfaFactor, user_id)
            if factor is not None and factor.confirmed_at is not None:
                raise Conflict("two-factor sign-in is already on: turn it off first to enrol again")
            if factor is not None:
                session.delete(factor)
                session.flush()
            session.add(MfaFactor(user_id=user_id, secret=secret, created_at=self.now()))
            self.audit.record(
                session, "mfa.enrolled", actor_id=user_id, subject_id=user_id, address=client.address
            )
            email = user.email
        uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
        return Enrolment(secret, uri)

    def confirm(self, user_id: str, code: str, client: Client) -> list[str]:
        """Turn two-factor sign-in on with a first good code; the new recovery codes."""
        with self._sessions.begin() as session:
            factor = session.get(MfaFactor, user_id)
            if factor is None or factor.confirmed_at is not None:
                raise Conflict("nothing to confirm: enrol first (POST /api/v1/users/me/mfa)")
            if not self._take_totp(session, factor, code):
                self.audit.record(
                    session,
                    "mfa.confirm_failed",
                    actor_id=user_id,
                    subject_id=user_id,
                    address=client.address,
                )
                failed = True
            else:
                factor.confirmed_at = self.now()
                codes = self._replace_codes(session, user_id)
                self.audit.record(
                    session, "mfa.enabled", actor_id=user_id, subject_id=user_id, address=client.address
                )
                failed = False
        if failed:
            raise WrongCode()
        return codes

    def regenerate(self, user_id: str, code: str, client: Client) -> list[str]:
        """New recovery codes (the old ones stop working), for a good TOTP code."""
        with self._sessions.begin() as session:
            factor = session.get(MfaFactor, user_id)
            if factor is None or factor.confirmed_at is None:
                raise Conflict("two-factor sign-in is off")
            ok = self._take_totp(session, factor, code)
            if ok:
                codes = self._replace_codes(session, user_id)
            self.audit.record(
                session, "mfa.recovery_codes_replaced" if ok else "mfa.failed", actor_id=user_id,
                subject_id=user_id, address=client.address,
            )  # fmt: skip
        if not ok:
            raise WrongCode()
        return codes

    def disable(self, user_id: str, code: str | None, password: str | None, client: Client) -> None:
        """Turn two-factor sign-in off, with a code (TOTP or recovery) or the password."""
        if password is not None and not self._password_matches(user_id, password):
            self.audit.record_now("mfa.failed", actor_id=user_id, subject_id=user_id, address=client.address)
            raise PlatformError("password: wrong password", status=403)
        with self._sessions.begin() as session:
            factor = session.get(MfaFactor, user_id)
            if factor is None:
                raise Conflict("two-factor sign-in is off")
            ok = password is not None or (code is not None and self._take_any(session, factor, code))
            if ok:
                session.delete(factor)
                session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            self.audit.record(
                session, "mfa.disabled" if ok else "mfa.failed", actor_id=user_id, subject_id=user_id,
                address=client.address,
            )  # fmt: skip
        if not ok:
            raise WrongCode()

    def verify(self, user_id: str, code: str, client: Client) -> bool:
        """The second step of a sign-in: a TOTP code or a recovery code (spent); audited if wrong."""
        with self._sessions.begin() as session:
            factor = session.get(MfaFactor, user_id)
            if factor is None or factor.confirmed_at is None:
                return False
            ok = self._take_any(session, factor, code)
            if not ok:
                self.audit.record(session, "mfa.failed", subject_id=user_id, address=client.address)
        return ok

    # -- codes --------------------------------------------------------------------------------------

    def _password_matches(self, user_id: str, password: str) -> bool:
        with self._sessions() as session:
            stored = session.scalar(select(User.password_hash).where(User.id == user_id))
        return self.passwords.verify(password, stored)[0]

    def _take_any(self, session: Session, factor: MfaFactor, code: str) -> bool:
        if self._take_totp(session, factor, code):
            return True
        return self._take_recovery(session, factor.user_id, code)

    def _take_totp(self, session: Session, factor: MfaFactor, code: str) -> bool:
        """Whether ``code`` is the code of a step around now not used before; that step is spent."""
        code = _normal(code)
        if len(code) != 6 or not code.isdigit():
            return False
        totp = pyotp.TOTP(factor.secret)
        now = self.now()
        current = totp.timecode(now)
        step = next(
            (
                s
                for s in (current - 1, current, current + 1)
                if hmac.compare_digest(totp.generate_otp(s), code)
            ),
            None,
        )
        if step is None:
            return False
        spent = session.execute(
            update(MfaFactor)
            .where(
                MfaFactor.user_id == factor.user_id,
                or_(MfaFactor.last_step.is_(None), MfaFactor.last_step < step),
            )
            .values(last_step=step)
        )
        return bool(spent.rowcount)  # type: ignore[attr-defined]

    def _take_recovery(self, session: Session, user_id: str, code: str) -> bool:
        spent = session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.code_hash == _code_hash(user_id, code), RecoveryCode.used_at.is_(None))
            .values(used_at=self.now())
        )
        used = bool(spent.rowcount)  # type: ignore[attr-defined]
        if used:
            self.audit.record(session, "mfa.recovery_code_used", subject_id=user_id)
        return used

    def _replace_codes(self, session: Session, user_id: str) -> list[str]:
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
        now = self.now()
        session.add_all(
            RecoveryCode(code_hash=_code_hash(user_id, c), user_id=user_id, created_at=now) for c in codes
        )
        return codes
