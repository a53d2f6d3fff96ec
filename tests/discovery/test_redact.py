"""Broker passwords never reach a log line or a status page."""

from __future__ import annotations

import pytest

from avocado.discovery import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        (
            "amqps://node:s3cr%40t@mq.example:5671/prod?heartbeat=30",
            "amqps://node:***@mq.example:5671/prod?heartbeat=30",
        ),
        ("amqp://user:p:a:ss@host/", "amqp://user:***@host/"),
        ("amqp://user:p@ss@host/", "amqp://user:***@host/"),
        ("amqp://user@host/", "amqp://user@host/"),
        ("amqp://user:@host/", "amqp://user:@host/"),
        ("amqp://host:5672/", "amqp://host:5672/"),
        ("amqp://[::1", "<unparseable url>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_removes_the_password_in_any_spelling() -> None:
    url = "amqps://node:s3cr%40t@mq.example/"
    text = "login refused for s3cr@t (sent as s3cr%40t)"
    assert redact_text(text, url) == "login refused for *** (sent as ***)"
    assert redact_text("nothing secret", "amqp://host/") == "nothing secret"
