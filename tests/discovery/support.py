"""Shared by the discovery tests: the broker's address, a stand-in node state, a recording registry."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from avocado.discovery import Announcement, AnnounceState, ModelInfo, Registry

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672
BROKER_URL = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/"
MODELS = (ModelInfo(name="smollm2:135m", digest="sha256:" + "ab" * 32, size=105_000_000),)

# Fast retries so that outages in tests last well under a second after the line comes back.
FAST = {"retry_initial": 0.05, "retry_max": 0.3, "connect_timeout": 2.0, "publish_timeout": 3.0}


def require_broker() -> str:
    """The broker URL, or fail with a hint when nothing listens there."""
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=1).close()
    except OSError:
        pytest.fail(f"RabbitMQ is not answering on {BROKER_HOST}:{BROKER_PORT} (run scripts/services.sh)")
    return BROKER_URL


def new_service_id() -> str:
    return f"test-{uuid.uuid4()}"


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout: float = 20.0) -> None:
    """Run an async test body in a fresh event loop, failing if it takes longer than ``timeout``."""

    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await scenario()

    asyncio.run(bounded())


class FakeNode:
    """A state provider whose answer the test changes."""

    def __init__(self, url: str = "http://node.test:11434") -> None:
        self.state: AnnounceState | None = AnnounceState(url=url, models=MODELS, capabilities=("chat",))
        self.asked = 0  # how often the announcer asked for the state

    def move(self, url: str) -> None:
        assert self.state is not None
        self.state = AnnounceState(url=url, models=self.state.models, capabilities=self.state.capabilities)

    def __call__(self) -> AnnounceState | None:
        self.asked += 1
        return self.state


class RecordingRegistry(Registry):
    """A registry that also remembers every sequence it got and which ones it took, per node."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: defaultdict[str, list[int]] = defaultdict(list)
        self.accepted: defaultdict[str, list[Announcement]] = defaultdict(list)

    def apply(self, announcement: Announcement) -> bool:
        taken = super().apply(announcement)
        self.received[announcement.service_id].append(announcement.sequence)
        if taken:
            self.accepted[announcement.service_id].append(announcement)
        return taken

    def sequences(self, service_id: str) -> list[int]:
        return [a.sequence for a in self.accepted[service_id]]

    async def wait_sequence(self, service_id: str, sequence: int) -> None:
        """Wait (up to 5 s) until this registry accepted ``sequence`` or a later one from ``service_id``."""
        await self.wait_for(lambda _: any(s >= sequence for s in self.sequences(service_id)), 5.0)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after 5 s."""
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within 5s"
        await asyncio.sleep(0.02)


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl`` (the broker's own admin tool) and fail the test if it does."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not installed (it comes with rabbitmq-server)")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"rabbitmqctl {args[0]} failed: {done.stderr.strip()}"


@contextmanager
def broker_user() -> Iterator[tuple[str, str]]:
    """A RabbitMQ user of its own on ``/``, deleted afterwards: ``(name, its broker URL)``."""
    require_broker()
    name, password = f"avocado-test-{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(16)
    rabbitmqctl("add_user", name, password)
    try:
        rabbitmqctl("set_permissions", "-p", "/", name, ".*", ".*", ".*")
        yield name, f"amqp://{name}:{password}@{BROKER_HOST}:{BROKER_PORT}/"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", name], capture_output=True, timeout=60)
