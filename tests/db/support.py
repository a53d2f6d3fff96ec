"""Databases for tests, on both backends: a SQLite file, and PostgreSQL on 127.0.0.1:5432.

Each module or conftest that imports these fixtures gets one PostgreSQL database per test session
(created empty, dropped at the end); every test starts with an empty ``public`` schema in it.
``database_url`` is parametrized, so a test that asks for it runs once per backend.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.engine import make_engine, make_sessionmaker, sqlite_url
from avocado.db.migrate import upgrade

__all__ = [
    "BACKENDS",
    "database_url",
    "empty_public_schema",
    "engine",
    "migrated_url",
    "postgres_database",
    "sessions",
]

BACKENDS = ("sqlite", "postgresql")
SERVER = os.environ.get("AVOCADO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session (its URL), dropped when the session ends."""
    name = f"avocado_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {SERVER} (run scripts/services.sh): {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_public_schema(url: str) -> None:
    """Drop everything in ``url``'s ``public`` schema."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "avocado.sqlite3")
    url: str = request.getfixturevalue("postgres_database")
    empty_public_schema(url)
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """``database_url`` with every migration applied."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    made = make_engine(migrated_url)
    yield made
    made.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)
