"""Engines: URL handling, SQLite's pragmas, and UTC timestamps that stay aware on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError

from avocado.db.base import UtcDateTime
from avocado.db.engine import BUSY_TIMEOUT_S, make_engine, make_sessionmaker, normalize_url, sqlite_url


def test_postgres_urls_get_the_psycopg_driver() -> None:
    for url in ("postgresql://u:p@db/avocado", "postgres://u:p@db/avocado", "postgresql+psycopg://u:p@db/a"):
        assert normalize_url(url).drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:////tmp/x.sqlite3").drivername == "sqlite"


def test_unsupported_or_invalid_urls_are_refused_without_echoing_secrets() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'") as refused:
        normalize_url("mysql://root:hunter2@db/avocado")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ValueError, match="invalid database URL"):
        normalize_url("not a url at all")


def test_sqlite_gets_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "gateway.sqlite3"
    engine = make_engine(sqlite_url(path))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == int(BUSY_TIMEOUT_S * 1000)
        assert path.is_file()
    finally:
        engine.dispose()


def test_sqlite_in_memory_works() -> None:
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_both_backends_connect(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        assert engine.dialect.name in ("sqlite", "postgresql")
        if engine.dialect.name == "postgresql":
            assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_utc_datetimes_come_back_aware_and_in_utc(database_url: str) -> None:
    stamps = Table("stamps", MetaData(), Column("id", Integer, primary_key=True), Column("at", UtcDateTime))
    engine = make_engine(database_url)
    try:
        stamps.create(engine)
        paris = datetime(2030, 5, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        with engine.begin() as connection:
            connection.execute(insert(stamps), [{"id": 1, "at": paris}, {"id": 2, "at": None}])
            assert connection.execute(select(stamps.c.at).where(stamps.c.id == 1)).scalar_one() == paris
            back = connection.execute(select(stamps.c.at).where(stamps.c.id == 1)).scalar_one()
            assert back.tzinfo is not None and back.utcoffset() == timedelta(0)
            assert back == datetime(2030, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
            assert connection.execute(select(stamps.c.at).where(stamps.c.id == 2)).scalar_one() is None
        with pytest.raises(StatementError, match="naive datetime"), engine.begin() as connection:
            connection.execute(insert(stamps), [{"id": 3, "at": datetime(2030, 1, 1)}])
    finally:
        engine.dispose()
