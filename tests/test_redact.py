"""Secrets never reach a log line, an error or a status page: the one redaction module."""

from __future__ import annotations

import pytest

from avocado.redact import redact, redact_text, redact_url, url_secrets


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
        ("https://node.example/v1?token=abc123&model=x", "https://node.example/v1?token=***&model=x"),
        (
            "https://me:pw@bucket.example/f.gguf?X-Amz-Signature=deadbeef&X-Amz-Expires=60",
            "https://me:***@bucket.example/f.gguf?X-Amz-Signature=***&X-Amz-Expires=60",
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_removes_the_password_in_any_spelling() -> None:
    url = "amqps://node:s3cr%40t@mq.example/"
    text = "login refused for s3cr@t (sent as s3cr%40t)"
    assert redact_text(text, url) == "login refused for *** (sent as ***)"
    assert redact_text("nothing secret", "amqp://host/") == "nothing secret"
    assert url_secrets(url) == {"s3cr%40t", "s3cr@t"} and url_secrets("amqp://[::1") == set()


def test_known_secrets_url_passwords_and_assigned_tokens_are_masked() -> None:
    assert redact("token 2abcDEF rejected", ["2abcDEF"]) == "token *** rejected"
    assert (
        redact("GET https://me:pa55w0rd@host.example/x failed") == "GET https://me:***@host.example/x failed"
    )
    assert redact("ssh://git:hunter2@[::1]:22") == "ssh://git:***@[::1]:22"
    assert (
        redact("authtoken=abc123&x=1 password: letmein api_key=k")
        == "authtoken=***&x=1 password: *** api_key=***"
    )
    assert redact("sent Authorization: Bearer sk-abc.def_1 to it") == "sent Authorization: Bearer *** to it"
    assert (
        redact("https://host.example:8443/path and user@host")
        == "https://host.example:8443/path and user@host"
    )
    assert redact("nothing to hide", ["", "absent"]) == "nothing to hide"
