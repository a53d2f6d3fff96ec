"""Reset links by e-mail: a real SMTP server (aiosmtpd) on loopback receives them, sent as a
background job, in-process and through RabbitMQ and Redis."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from taskiq import TaskiqMessage, TaskiqMiddleware

from avocado.platform.settings import PlatformSettings
from tests.platform.support import PASSWORD, platform_settings, running
from tests.support import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def wait(self, count: int, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} messages came, {count} expected"
            time.sleep(0.02)
        return self.messages


class Wire(TaskiqMiddleware):
    """What the platform puts on the broker: each job's bytes as sent, with its task's name."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes]] = []

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        self.sent.append((message.task_name, self.broker.formatter.dumps(message).message))
        return message


@pytest.fixture
def smtp() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}", inbox
    controller.stop()


BROKERS = {
    "in-process": None,
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
}


@pytest.mark.parametrize("broker", list(BROKERS))
def test_a_reset_link_arrives_by_mail_and_works_once(
    smtp: tuple[str, Inbox], tmp_path: Path, broker: str
) -> None:
    url, inbox = smtp
    queue = f"avocado.test.{secrets.token_hex(6)}"  # the broker is shared with other runs
    settings = platform_settings(
        tmp_path / "home",
        f"sqlite:///{tmp_path}/p.sqlite3",
        smtp_url=url,
        mail_from="platform@example.com",
        public_url="https://chat.example.com",
        broker_url=BROKERS[broker],
        broker_queue=queue,
    )
    try:
        _reset_by_mail(settings, inbox)
    finally:
        _drop_queue(BROKERS[broker], queue)


def _drop_queue(broker: str | None, queue: str) -> None:
    """Remove what the test's queue left on the shared broker."""
    if broker is None:
        return
    if broker.startswith("redis"):
        import redis

        with redis.Redis.from_url(broker) as client:
            client.delete(queue)
        return
    import asyncio

    import aio_pika

    async def drop() -> None:
        async with await aio_pika.connect(broker) as connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.exchange_delete(queue)

    asyncio.run(drop())


def _reset_by_mail(settings: PlatformSettings, inbox: Inbox) -> None:
    for started in running(settings):
        wire = Wire()
        started.platform.jobs.broker.add_middlewares(wire)
        started.register("ada@example.com")
        with started.client() as http:
            asked = http.post("/api/v1/auth/password-reset/request", json={"email": "ADA@example.com"})
            nobody = http.post("/api/v1/auth/password-reset/request", json={"email": "nobody@example.com"})
            assert asked.status_code == nobody.status_code == 202
            assert asked.json() == nobody.json()  # nothing tells whether the address has an account
            (mail,) = inbox.wait(1)
            assert mail["To"] == "ada@example.com" and mail["From"] == "platform@example.com"
            body = mail.get_payload(decode=True)
            assert isinstance(body, bytes)
            link = re.search(r"https://chat\.example\.com/reset-password#token=(\S+)", body.decode())
            assert link is not None
            token = link.group(1)
            # A job per request, known address or not (the same work, the same time, either way),
            # and no token on the broker: the worker makes it where it mails it.
            assert [name for name, _ in wire.sent] == ["avocado.platform.send_reset"] * 2
            assert b"ada@example.com" in wire.sent[0][1] and b"nobody@example.com" in wire.sent[1][1]
            assert not any(token.encode() in data or b"token=" in data for _, data in wire.sent)
            assert (
                http.post(
                    "/api/v1/auth/password-reset", json={"token": token, "password": "a new one!"}
                ).status_code
                == 204
            )
            assert (
                http.post(
                    "/api/v1/auth/password-reset", json={"token": token, "password": "again new"}
                ).status_code
                == 400
            )
        started.sign_in("ada@example.com", "a new one!")
        time.sleep(0.2)
        assert len(inbox.messages) == 1  # the unknown address got nothing


def test_without_smtp_no_link_is_sent_and_the_answer_is_the_same(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3")
    for started in running(settings):
        started.register("ada@example.com")
        with started.client() as http:
            answer = http.post("/api/v1/auth/password-reset/request", json={"email": "ada@example.com"})
        assert answer.status_code == 202
        admin = started.sign_in("ada@example.com", PASSWORD)
        issued = admin.get("/api/v1/admin/audit", params={"action": "password.reset_issued"}).json()["items"]
        assert issued == []  # no link exists that nobody could receive


def test_reset_requests_are_limited_per_address(smtp: tuple[str, Inbox], tmp_path: Path) -> None:
    url, inbox = smtp
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", smtp_url=url, login_free_attempts=2
    )
    for started in running(settings):
        started.register("ada@example.com")
        with started.client() as http:
            codes = [
                http.post(
                    "/api/v1/auth/password-reset/request", json={"email": "ada@example.com"}
                ).status_code
                for _ in range(3)
            ]
        assert codes == [202, 202, 429]
        assert len(inbox.wait(2)) == 2
