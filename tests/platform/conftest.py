"""Fixtures for the platform's tests: a running platform on each database backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.support import database_url, postgres_database
from tests.platform.support import RunningPlatform, platform_settings, running

__all__ = ["database_url", "platform", "postgres_database", "sqlite_platform"]


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[RunningPlatform]:
    """A platform on a fresh database, once on SQLite and once on PostgreSQL."""
    yield from running(platform_settings(tmp_path / "home", database_url))


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    """A platform on SQLite only, for behaviour that does not depend on the database."""
    yield from running(platform_settings(tmp_path / "home", f"sqlite:///{tmp_path / 'platform.sqlite3'}"))
