"""The ``api_keys`` table: virtual API keys, stored as a SHA-256 of the key and never the key itself.

Why SHA-256 and not a password hash (argon2, bcrypt): those are slow on purpose to make guessing
low-entropy passwords expensive. A key here is 40 random base-62 characters (about 238 bits), so no
guessing can succeed whatever the hash costs, and a slow hash would only cost every request its
verification time (and make an easy denial of service). An unsalted, deterministic hash also lets a
key be found by an indexed lookup on ``key_hash`` instead of testing every stored key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from avocado.db.base import Base, UtcDateTime

__all__ = ["ApiKey", "KeyUserUsage"]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a uuid4, as text
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the full key
    key_prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, for lists
    # JSON list of model names; SQL NULL (not JSON null) for "every model"
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    rpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_parallel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class KeyUserUsage(Base):
    """Usage per key and per user the caller named in ``X-Avocado-User`` (a platform calling for its
    users). The user is the caller's name for them, meaningful within that key only: a key cannot
    add to another key's rows. ``key_id`` is ``master`` for the master key, which has no row."""

    __tablename__ = "api_key_user_usage"

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime)
