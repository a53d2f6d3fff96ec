"""Secrets never reach logs, errors or status."""

from __future__ import annotations

from avocado.tunnel import redact


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
    assert (
        redact("https://host.example:8443/path and user@host")
        == "https://host.example:8443/path and user@host"
    )
    assert redact("nothing to hide", ["", "absent"]) == "nothing to hide"
