"""Engines and sessions for the two supported databases: SQLite (the default) and PostgreSQL.

``sqlite:///PATH`` gets WAL (readers never wait for the writer), foreign keys on and a busy timeout,
so the gateway's threads and the admin API can share one file. ``postgresql://`` and ``postgres://``
are rewritten to the psycopg 3 driver, the one installed. Error messages name the scheme only: a
URL may carry a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

__all__ = ["BUSY_TIMEOUT_S", "make_engine", "make_sessionmaker", "normalize_url", "sqlite_url"]

BUSY_TIMEOUT_S = 10.0  # how long a SQLite writer waits for another one before "database is locked"

_POSTGRES_ALIASES = ("postgresql", "postgres", "postgresql+psycopg")


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file (``sqlite:////abs/path`` for an absolute path)."""
    return f"sqlite:///{path}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; PostgreSQL URLs without a driver (or ``postgres://``) get ``+psycopg``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise ValueError("invalid database URL: expected sqlite:///PATH or postgresql://...") from None
    if parsed.drivername in _POSTGRES_ALIASES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed
    raise ValueError(
        f"unsupported database {parsed.drivername!r}: expected sqlite:///PATH or postgresql://..."
    )


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    connect_args: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    if _is_memory(url):
        engine = create_engine(url, echo=echo, connect_args=connect_args, poolclass=StaticPool)
    else:
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args=connect_args)
    memory = _is_memory(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()

    return engine


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``sqlite:///PATH`` (parent directories created) or a PostgreSQL URL."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo)
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; objects stay readable after commit (no reload on attribute access)."""
    return sessionmaker(engine, expire_on_commit=False)
