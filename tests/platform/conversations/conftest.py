"""A platform in front of the session's real node, with a signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.support import RunningPlatform, Session, platform_settings, running
from tests.support import RunningNode


@pytest.fixture
def chat_platform(node: RunningNode, database_url: str, tmp_path: Path) -> Iterator[RunningPlatform]:
    """A platform on each database, its upstream the real node."""
    yield from running(platform_settings(tmp_path / "home", database_url, upstream_url=node.url))


@pytest.fixture
def sqlite_chat(node: RunningNode, tmp_path: Path) -> Iterator[RunningPlatform]:
    """The same on SQLite only, for behaviour that does not depend on the database."""
    url = f"sqlite:///{tmp_path / 'chat.sqlite3'}"
    yield from running(platform_settings(tmp_path / "home", url, upstream_url=node.url))


@pytest.fixture
def ada(sqlite_chat: RunningPlatform) -> Iterator[Session]:
    sqlite_chat.register("ada@example.com", "Ada")
    session = sqlite_chat.sign_in("ada@example.com")
    yield session
    session.http.close()
