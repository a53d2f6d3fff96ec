"""Shared fixtures: a real node over a real model store.

The bundled models are registered once per test session into a temporary AVOCADO_HOME; every
server started by the tests serves from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from avocado.config import Settings
from avocado.node.app import open_store
from tests.support import RunningNode, start_node
from tests.tunnel.support import Sshd, start_sshd


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AVOCADO_HOME with the bundled models registered (once per session)."""
    path = tmp_path_factory.mktemp("avocado-home")
    open_store(Settings(home=path))
    return path


@pytest.fixture(scope="session")
def node(home: Path) -> Iterator[RunningNode]:
    running = start_node(home)
    yield running
    running.stop()


@pytest.fixture
def http(node: RunningNode) -> Iterator[httpx.Client]:
    with node.client() as client:
        yield client


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on loopback with its own keys (ssh tunnels go through it)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
