"""Who a request comes from: X-Forwarded-For believed only from ``trusted_proxies``, by the platform
alone (uvicorn runs with ``proxy_headers=False``, as ``avocado platform`` runs it)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request

from avocado.platform.net import ProxyTrust
from tests.platform.support import PASSWORD, RunningPlatform, Session, platform_settings, running


def _request(*forwarded_for: str, peer: str = "127.0.0.1") -> Request:
    headers = [(b"x-forwarded-for", line.encode()) for line in forwarded_for]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": headers,
        "client": (peer, 40000),
        "server": ("127.0.0.1", 8080),
        "scheme": "http",
    }
    return Request(scope)


def test_every_forwarded_for_line_is_read_right_to_left() -> None:
    proxies = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    # A proxy that adds its own line: the client is on the last line, not the first (the client's).
    assert proxies.client_address(_request("198.51.100.7", "203.0.113.9")) == "203.0.113.9"
    assert proxies.client_address(_request("198.51.100.7, 203.0.113.9", "10.1.2.3")) == "203.0.113.9"


def test_a_hop_that_is_not_an_address_never_becomes_the_client() -> None:
    proxies = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    assert proxies.client_address(_request("10.0.0.5, not-an-address")) == "127.0.0.1"
    assert proxies.client_address(_request("junk, 10.0.0.5")) == "10.0.0.5"
    assert proxies.client_address(_request("2001:DB8::1")) == "2001:db8::1"  # one spelling per address


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert ProxyTrust([]).client_address(_request("203.0.113.9")) == "127.0.0.1"
    assert ProxyTrust(["10.0.0.0/8"]).client_address(_request("203.0.113.9")) == "127.0.0.1"


def _fail_sign_in(platform: RunningPlatform, email: str, *forwarded_for: str) -> int:
    headers = [("X-Forwarded-For", line) for line in forwarded_for]
    with platform.client() as http:
        answer = http.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong one!"}, headers=headers
        )
    return answer.status_code


def _failed_addresses(admin: Session) -> list[str]:
    items = admin.get("/api/v1/admin/audit", params={"action": "signin.failed"}).json()["items"]
    return [item["address"] for item in reversed(items)]


def test_without_trusted_proxies_a_spoofed_forwarded_for_changes_nothing(tmp_path: Path) -> None:
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", address_free_attempts=2, login_free_attempts=100
    )
    for started in running(settings):
        started.register("ada@example.com")
        admin = started.sign_in("ada@example.com", PASSWORD)
        assert _fail_sign_in(started, "ada@example.com", "203.0.113.1") == 401
        assert _fail_sign_in(started, "ghost@example.com", "203.0.113.2") == 401
        # Both counted against the real address (loopback): its limit is reached.
        assert _fail_sign_in(started, "other@example.com") == 429
        assert _fail_sign_in(started, "other@example.com", "203.0.113.3") == 429
        assert _failed_addresses(admin) == ["127.0.0.1", "127.0.0.1"]


def test_with_loopback_trusted_the_forwarded_client_counts(tmp_path: Path) -> None:
    settings = platform_settings(
        tmp_path / "home",
        f"sqlite:///{tmp_path}/p.sqlite3",
        address_free_attempts=2,
        login_free_attempts=100,
        trusted_proxies="127.0.0.1",
    )
    for started in running(settings):
        started.register("ada@example.com")
        admin = started.sign_in("ada@example.com", PASSWORD)
        assert _fail_sign_in(started, "ada@example.com", "198.51.100.7", "203.0.113.9") == 401
        assert _fail_sign_in(started, "ghost@example.com", "203.0.113.9") == 401
        assert _fail_sign_in(started, "other@example.com", "203.0.113.9") == 429
        assert _fail_sign_in(started, "other@example.com") == 401  # loopback itself is another address
        assert _failed_addresses(admin) == ["203.0.113.9", "203.0.113.9", "127.0.0.1"]
