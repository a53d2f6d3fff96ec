"""Fixtures for the tunnel tests: a stand-in node on loopback (the sshd fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tunnel.support import LocalNode, start_local_node


@pytest.fixture(scope="session")
def local_node() -> Iterator[LocalNode]:
    node = start_local_node()
    yield node
    node.stop()
