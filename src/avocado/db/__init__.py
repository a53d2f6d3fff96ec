"""Storage shared by the gateway and, later, the platform: SQLAlchemy models, engines, migrations.

SQLite (one file in the home directory) is the default; PostgreSQL (``postgresql+psycopg``) is for
deployments with several gateway replicas. The schema is owned by Alembic migrations packaged in
:mod:`avocado.db.migrations`, applied with :func:`avocado.db.migrate.upgrade` at start.
"""

from __future__ import annotations

from avocado.db.base import Base, UtcDateTime, utcnow
from avocado.db.engine import make_engine, make_sessionmaker, normalize_url, sqlite_url
from avocado.db.migrate import upgrade

__all__ = [
    "Base",
    "UtcDateTime",
    "make_engine",
    "make_sessionmaker",
    "normalize_url",
    "sqlite_url",
    "upgrade",
    "utcnow",
]
