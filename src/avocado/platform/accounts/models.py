"""The accounts tables: users, their sessions, the refresh tokens of each session, password resets.

Secrets are never stored: a refresh token or a reset token is kept as its SHA-256 (they are 256
random bits, so a slow hash would add cost and no safety: see ``gateway/keys/models.py``), a password
as its argon2id hash. A session is one sign-in on one device: the family of refresh tokens that
rotate from it (RFC 9700 §4.14), so presenting one already rotated revokes the session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from avocado.db.base import Base, UtcDateTime

__all__ = [
    "AuthSession",
    "Avatar",
    "MfaFactor",
    "OidcIdentity",
    "PasswordReset",
    "PersonalKey",
    "Preferences",
    "RecoveryCode",
    "RefreshToken",
    "User",
]


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a uuid4, as text
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalized, lower case
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None: cannot sign in
    role: Mapped[str] = mapped_column(String(16))  # admin | user
    status: Mapped[str] = mapped_column(String(16))  # pending | active | disabled
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)


class AuthSession(Base):
    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)  # moved on by every refresh
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(String(64))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # used: spent


class PasswordReset(Base):
    __tablename__ = "password_resets"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class PersonalKey(Base):
    """A user's personal API key for the OpenAI-compatible ``/v1`` API, kept as its SHA-256."""

    __tablename__ = "personal_api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole key
    key_prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, for lists
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (Index("ix_personal_api_keys_user_id_created_at", "user_id", "created_at", "id"),)


class MfaFactor(Base):
    """A user's TOTP secret. Enrolment makes it unconfirmed; the first good code confirms it and
    two-factor sign-in starts. The secret is kept as is (a verifier needs it); ``last_step`` is the
    time step of the last code accepted, so a code is good once (RFC 6238 §5.2)."""

    __tablename__ = "mfa_factors"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))  # base32
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RecoveryCode(Base):
    """A one-time recovery code, kept as the SHA-256 of the user's id and the code."""

    __tablename__ = "mfa_recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Preferences(Base):
    """A user's preferences; no row means the defaults."""

    __tablename__ = "user_preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    default_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    theme: Mapped[str] = mapped_column(String(16))  # system | light | dark
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Avatar(Base):
    """A user's picture: the image as uploaded (PNG, JPEG, WebP or GIF, checked by its first bytes),
    at most a few hundred KiB, kept in the database so replicas share it and it goes with the user."""

    __tablename__ = "user_avatars"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))  # the ETag
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OidcIdentity(Base):
    """An account at an OpenID Connect provider (its issuer and subject) that signs in to a user.

    ``email`` is the address the provider gave when the identity was linked (for the record: the
    account's own e-mail may change later). Deleting the user deletes its identities.
    """

    __tablename__ = "oidc_identities"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_oidc_identities_issuer_subject"),)
