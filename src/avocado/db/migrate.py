"""Alembic, driven from Python: the migration scripts ship inside the package, no alembic.ini needed.

``upgrade(url)`` brings a database to the newest schema; the gateway calls it at start. On
PostgreSQL it holds an advisory lock meanwhile, so replicas starting together migrate one at a
time. :func:`pending_changes` lists what the models have that the migrations do not (a test keeps
it empty); :func:`revision` writes a new migration script from that difference, for developers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, text

from avocado.db.engine import make_engine
from avocado.db.tables import include_object, load_metadata

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current", "head", "pending_changes", "revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_ID = 0x61766F6361646F  # "avocado": the pg_advisory_xact_lock key migrations hold


def alembic_config(connection: Connection | None = None) -> Config:
    """A config pointing at the packaged scripts; ``env.py`` uses ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def _engine(url: str | URL | Engine) -> tuple[Engine, bool]:
    """The engine for ``url`` and whether it was made here (and so is disposed of here)."""
    return (url, False) if isinstance(url, Engine) else (make_engine(url), True)


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (all of them by default), in one transaction."""
    engine, owned = _engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            command.upgrade(alembic_config(connection), revision)
    finally:
        if owned:
            engine.dispose()


def head() -> str | None:
    """The newest revision the packaged scripts know."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(url: str | URL | Engine) -> str | None:
    """The revision the database is at (``None``: never migrated)."""
    engine, owned = _engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def pending_changes(url: str | URL | Engine) -> list[Any]:
    """Autogenerate's differences between the database and the models (empty when they agree)."""
    engine, owned = _engine(url)
    try:
        with engine.connect() as connection:
            options = {"compare_type": True, "include_object": include_object}
            context = MigrationContext.configure(connection, opts=options)
            return list(compare_metadata(context, load_metadata()))
    finally:
        if owned:
            engine.dispose()


def revision(url: str | URL | Engine, message: str, rev_id: str | None = None) -> None:
    """Write a new migration script into ``migrations/versions`` from the models' differences.

    ``url`` must point at a database already at head (a scratch SQLite file will do).
    """
    engine, owned = _engine(url)
    try:
        with engine.begin() as connection:
            command.revision(alembic_config(connection), message, autogenerate=True, rev_id=rev_id)
    finally:
        if owned:
            engine.dispose()
