"""Single sign-on with OpenID Connect, end to end against a real OpenID provider on loopback
(``oidc-provider-mock``: authlib's authorization server in a Flask app, with discovery, JWKS, signed
ID tokens), on SQLite and PostgreSQL: a verified e-mail links to the existing account, an unverified
one does not, a new account follows the sign-up policy, a forged or missing state is refused, a
provider that is down is a clear 502, and deleting the account deletes its identities.

The provider's consent page is driven as a browser would: the platform's redirect is followed to
the provider, its form posted with the subject to sign in as, and the provider's redirect back is
followed to the platform's callback with the same cookie jar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from oidc_provider_mock import run_server_in_thread
from pydantic import ValidationError

from avocado.platform.build import build_platform
from avocado.platform.settings import PlatformSettings
from tests.platform.support import PASSWORD, RunningPlatform, platform_settings
from tests.support import free_port, serve

AUTH = "/api/v1/auth"


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real OpenID provider on loopback; its issuer URL. (It refuses plain http unless told.)"""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def _start(tmp_path: Path, database_url: str, issuer: str | None, **overrides: Any) -> RunningPlatform:
    port = free_port()
    sso: dict[str, Any] = {}
    if issuer is not None:
        sso = {
            "oidc_issuer": issuer,
            "oidc_client_id": "avocado-test",
            "oidc_client_secret": "client-secret-for-tests",
            "oidc_name": "Test ID",
        }
    settings = platform_settings(
        tmp_path / "home", database_url, port=port, public_url=f"http://127.0.0.1:{port}", **sso, **overrides
    )
    app = build_platform(settings)
    server = serve(app, port, proxy_headers=False)
    return RunningPlatform(server.url, settings, server, app.state.platform)


@pytest.fixture
def sso(tmp_path: Path, database_url: str, provider: str) -> Iterator[RunningPlatform]:
    """A platform (SQLite, then PostgreSQL) that signs in with ``provider``; root is its admin."""
    running = _start(tmp_path, database_url, provider)
    running.register("root@example.com", "Root")
    try:
        yield running
    finally:
        running.stop()


def _set_person(issuer: str, sub: str, **claims: Any) -> None:
    """What the provider will say about ``sub`` (the mock's user API)."""
    response = httpx.put(f"{issuer}/users/{sub}", json=claims)
    assert response.status_code == 204, response.text


def _to_provider(http: httpx.Client, next_path: str | None = None) -> str:
    """Start a sign-in at the platform; the provider's authorization URL it redirects to."""
    params = {"next": next_path} if next_path else None
    started = http.get(f"{AUTH}/oidc/login", params=params)
    assert started.status_code == 302, started.text
    assert "avocado_oidc" in started.cookies
    return started.headers["location"]


def _consent(authorize_url: str, sub: str) -> str:
    """The provider signs ``sub`` in; the callback URL (with code and state) it sends the browser to."""
    answer = httpx.post(authorize_url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def _sign_in(platform: RunningPlatform, sub: str, **headers: str) -> tuple[httpx.Client, httpx.Response]:
    """The whole round trip for ``sub``; the browser-like client and the callback's answer."""
    http = platform.client(headers=headers)
    callback = _consent(_to_provider(http), sub)
    return http, http.get(callback)


def _me(platform: RunningPlatform, http: httpx.Client) -> dict[str, Any]:
    """Who the session in ``http``'s cookies belongs to, as the web UI finds out after a reload."""
    refreshed = http.post(f"{AUTH}/refresh", headers={"X-CSRF-Token": http.cookies["avocado_csrf"]})
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    me = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


def test_discovery_says_whether_sso_is_on(sso: RunningPlatform, tmp_path: Path) -> None:
    with sso.client() as http:
        assert http.get(f"{AUTH}/oidc").json() == {
            "enabled": True,
            "name": "Test ID",
            "login_url": f"{AUTH}/oidc/login",
        }
    plain = _start(tmp_path / "plain", f"sqlite:///{tmp_path / 'plain.sqlite3'}", None)
    try:
        with plain.client() as http:
            assert http.get(f"{AUTH}/oidc").json() == {"enabled": False, "name": None, "login_url": None}
            off = http.get(f"{AUTH}/oidc/login")
            assert off.status_code == 404 and off.json()["detail"] == "single sign-on is not configured here"
    finally:
        plain.stop()


def test_login_redirect_carries_state_nonce_pkce_and_public_redirect_uri(sso: RunningPlatform) -> None:
    with sso.client(headers={"Host": "evil.example"}) as http:
        location = _to_provider(http)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{sso.settings.oidc_issuer}/oauth2/authorize?")
    assert query["response_type"] == ["code"] and query["client_id"] == ["avocado-test"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert query["redirect_uri"] == [f"{sso.settings.public_url}{AUTH}/oidc/callback"]  # not the Host
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20


def test_verified_email_links_the_existing_account(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    root = sso.sign_in("root@example.com")
    created = root.post(
        "/api/v1/admin/users",
        json={
            "email": "ada@example.com",
            "password": PASSWORD,
            "name": "Ada",
            "role": "user",
            "status": "active",
        },
    )
    assert created.status_code == 201, created.text
    ada_id = created.json()["id"]
    _set_person(issuer, "ada-at-idp", email="Ada@Example.com", email_verified=True, name="Ada L.")

    http, answer = _sign_in(sso, "ada-at-idp")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{sso.settings.public_url}/"
    assert "avocado_refresh" in http.cookies and "avocado_oidc" not in http.cookies
    assert _me(sso, http)["id"] == ada_id
    assert [(i.issuer, i.subject) for i in sso.platform.identities.list(ada_id)] == [(issuer, "ada-at-idp")]

    # The identity now signs in by itself, even after the provider's e-mail changes.
    _set_person(issuer, "ada-at-idp", email="ada@elsewhere.example", email_verified=False)
    http, answer = _sign_in(sso, "ada-at-idp")
    assert answer.status_code == 303 and _me(sso, http)["id"] == ada_id

    audit = root.get("/api/v1/admin/audit", params={"subject_id": ada_id}).json()["items"]
    actions = [event["action"] for event in audit]
    assert actions.count("oidc.linked") == 1
    oidc_sign_ins = [
        e for e in audit if e["action"] == "signin.succeeded" and e["detail"].get("via") == "oidc"
    ]
    assert len(oidc_sign_ins) == 2


def test_unverified_email_does_not_link(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    root = sso.sign_in("root@example.com")
    _set_person(issuer, "mallory", email="root@example.com", email_verified=False, name="Not Root")

    http, answer = _sign_in(sso, "mallory")
    assert answer.status_code == 403
    assert "does not say the address is verified" in answer.json()["detail"]
    assert "avocado_refresh" not in http.cookies
    root_id = root.get("/api/v1/users/me").json()["id"]
    assert sso.platform.identities.list(root_id) == []
    _, answer = _sign_in(sso, "mallory", Accept="text/html")
    assert answer.headers["location"] == f"{sso.settings.public_url}/signin?sso_error=unverified_link"
    refused = root.get("/api/v1/admin/audit", params={"action": "oidc.link_refused"}).json()["items"]
    assert len(refused) == 2 and {event["subject_id"] for event in refused} == {root_id}

    # No e-mail_verified claim at all is not a yes either, and a new address is not made an account.
    _set_person(issuer, "newcomer", email="new@example.com")
    _, answer = _sign_in(sso, "newcomer")
    assert answer.status_code == 403 and "verified" in answer.json()["detail"]
    assert root.get("/api/v1/admin/users", params={"q": "new@"}).json()["items"] == []


def test_new_account_follows_the_signup_policy(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    root = sso.sign_in("root@example.com")
    _set_person(issuer, "carol-sub", email="carol@example.com", email_verified=True, name="Carol")

    _, answer = _sign_in(sso, "carol-sub")  # approval, the default: pending
    assert answer.status_code == 403 and "approval" in answer.json()["detail"]
    carol = root.get("/api/v1/admin/users", params={"q": "carol"}).json()["items"]
    assert [(u["email"], u["name"], u["status"], u["role"]) for u in carol] == [
        ("carol@example.com", "Carol", "pending", "user")
    ]
    # A browser is sent to the pending notice instead of reading JSON.
    http, answer = _sign_in(sso, "carol-sub", Accept="text/html,*/*")
    assert answer.status_code == 303 and answer.headers["location"] == f"{sso.settings.public_url}/pending"

    assert root.patch(f"/api/v1/admin/users/{carol[0]['id']}", json={"status": "active"}).status_code == 200
    http, answer = _sign_in(sso, "carol-sub")
    assert answer.status_code == 303 and _me(sso, http)["email"] == "carol@example.com"
    # No password was set: the password sign-in stays closed to the account.
    with sso.client() as plain:
        assert (
            plain.post(f"{AUTH}/login", json={"email": "carol@example.com", "password": ""}).status_code
            == 422
        )

    # closed: a new person is refused and nothing is stored; open: active at once.
    assert root.patch("/api/v1/admin/settings", json={"signup_policy": "closed"}).status_code == 200
    _set_person(issuer, "dan-sub", email="dan@example.com", email_verified=True)
    _, answer = _sign_in(sso, "dan-sub")
    assert answer.status_code == 403 and "sign-up is closed" in answer.json()["detail"]
    _, answer = _sign_in(sso, "dan-sub", Accept="text/html")
    assert answer.headers["location"] == f"{sso.settings.public_url}/signin?sso_error=closed"
    assert root.get("/api/v1/admin/users", params={"q": "dan@"}).json()["items"] == []
    # ... but a linked identity still signs in.
    http, answer = _sign_in(sso, "carol-sub")
    assert answer.status_code == 303 and _me(sso, http)["email"] == "carol@example.com"

    assert root.patch("/api/v1/admin/settings", json={"signup_policy": "open"}).status_code == 200
    http, answer = _sign_in(sso, "dan-sub", Accept="text/html")
    assert answer.status_code == 303 and answer.headers["location"] == f"{sso.settings.public_url}/"
    me = _me(sso, http)
    assert (me["email"], me["name"], me["status"]) == ("dan@example.com", "dan", "active")


def test_first_account_by_sso_is_the_admin(tmp_path: Path, provider: str) -> None:
    running = _start(tmp_path, f"sqlite:///{tmp_path / 'first.sqlite3'}", provider)
    try:
        _set_person(provider, "founder", email="founder@example.com", email_verified=True, name="Founder")
        http, answer = _sign_in(running, "founder")
        assert answer.status_code == 303
        me = _me(running, http)
        assert (me["role"], me["status"]) == ("admin", "active")
    finally:
        running.stop()


def test_bad_or_missing_state_is_refused(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    _set_person(issuer, "eve-sub", email="root@example.com", email_verified=True)
    http = sso.client()
    callback = _consent(_to_provider(http), "eve-sub")
    parts = urlsplit(callback)
    code = parse_qs(parts.query)["code"][0]

    forged = http.get(f"{AUTH}/oidc/callback", params={"code": code, "state": "forged-state-value"})
    assert forged.status_code == 400
    assert forged.json()["detail"].startswith("state: does not match")
    assert "avocado_refresh" not in http.cookies

    # The right state from another browser (no cookie): refused too.
    with sso.client() as other:
        stolen = other.get(callback)
        assert stolen.status_code == 400 and "not started in this browser" in stolen.json()["detail"]
        assert "avocado_refresh" not in other.cookies
    # A browser gets the sign-in page with the message.
    with sso.client(headers={"Accept": "text/html"}) as other:
        page = other.get(callback)
        assert page.status_code == 303
        # ... with a reason from a fixed list, worded by the page (never words from the URL).
        assert page.headers["location"] == f"{sso.settings.public_url}/signin?sso_error=state"

    # A failed callback ends the attempt (its cookie is dropped): the right state no longer works.
    assert "avocado_oidc" not in http.cookies
    assert http.get(callback).status_code == 400
    # The provider's own refusal (the user said no) is a clear 400 as well.
    state = parse_qs(urlsplit(_to_provider(http)).query)["state"][0]
    denied = http.get(f"{AUTH}/oidc/callback", params={"state": state, "error": "access_denied"})
    assert denied.status_code == 400 and "access_denied" in denied.json()["detail"]
    http.close()

    root = sso.sign_in("root@example.com")
    failed = root.get("/api/v1/admin/audit", params={"action": "signin.failed"}).json()["items"]
    assert any(event["detail"].get("via") == "oidc" for event in failed)
    assert root.get("/api/v1/admin/audit", params={"action": "oidc.linked"}).json()["items"] == []


def test_provider_down_is_a_clear_error(tmp_path: Path, provider: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = _start(tmp_path / "down", f"sqlite:///{tmp_path / 'down.sqlite3'}", nowhere)
    try:
        with down.client() as http:
            answer = http.get(f"{AUTH}/oidc/login")
            assert answer.status_code == 502
            assert answer.json()["detail"].startswith("Test ID cannot be reached right now")
        with down.client(headers={"Accept": "text/html"}) as browser:
            answer = browser.get(f"{AUTH}/oidc/login")
            assert answer.status_code == 303
            assert answer.headers["location"] == f"{down.settings.public_url}/signin?sso_error=unavailable"
    finally:
        down.stop()


def test_provider_gone_before_the_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        running = _start(tmp_path, f"sqlite:///{tmp_path / 'gone.sqlite3'}", issuer)
        _set_person(issuer, "zed", email="zed@example.com", email_verified=True)
        http = running.client()
        callback = _consent(_to_provider(http), "zed")
    try:  # the provider has stopped: the code cannot be exchanged
        answer = http.get(callback)
        assert answer.status_code == 502 and "cannot be reached" in answer.json()["detail"]
        assert "avocado_refresh" not in http.cookies
    finally:
        http.close()
        running.stop()


def test_deleting_the_account_deletes_its_identities(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    root = sso.sign_in("root@example.com")
    created = root.post(
        "/api/v1/admin/users",
        json={
            "email": "ada@example.com",
            "password": PASSWORD,
            "name": "Ada",
            "role": "user",
            "status": "active",
        },
    ).json()
    _set_person(issuer, "ada-at-idp", email="ada@example.com", email_verified=True)
    _, answer = _sign_in(sso, "ada-at-idp")
    assert answer.status_code == 303 and len(sso.platform.identities.list(created["id"])) == 1

    ada = sso.sign_in("ada@example.com")
    assert ada.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}).status_code == 204
    assert sso.platform.identities.list(created["id"]) == []
    # The identity is free again: with sign-up by approval, it makes a new (pending) account.
    _, answer = _sign_in(sso, "ada-at-idp")
    assert answer.status_code == 403 and "approval" in answer.json()["detail"]


def test_settings_from_the_environment_and_their_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVOCADO_PLATFORM_OIDC_ISSUER", "https://id.example.com/realms/main/")
    monkeypatch.setenv("AVOCADO_PLATFORM_OIDC_CLIENT_ID", "avocado")
    monkeypatch.setenv("AVOCADO_PLATFORM_OIDC_CLIENT_SECRET", "s3cret-value")
    settings = PlatformSettings(home=tmp_path)
    assert settings.oidc_issuer == "https://id.example.com/realms/main"
    assert settings.oidc_client_secret is not None and "s3cret-value" not in repr(settings)

    monkeypatch.delenv("AVOCADO_PLATFORM_OIDC_CLIENT_ID")
    with pytest.raises(ValidationError, match="both oidc_issuer and oidc_client_id"):
        PlatformSettings(home=tmp_path)
    with pytest.raises(ValidationError, match="oidc_issuer must be an http"):
        PlatformSettings(home=tmp_path, oidc_issuer="ftp://id.example.com", oidc_client_id="x")
    with pytest.raises(ValidationError, match="an https:// AVOCADO_PLATFORM_OIDC_ISSUER"):
        PlatformSettings(
            home=tmp_path,
            production=True,
            signing_key="k" * 40,
            public_url="https://avocado.example.com",
            oidc_issuer="http://id.example.com",
            oidc_client_id="x",
        )


def test_next_path_and_two_factor_after_the_provider(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    _set_person(issuer, "root-sub", email="root@example.com", email_verified=True)
    base = sso.settings.public_url

    http = sso.client()
    answer = http.get(_consent(_to_provider(http, "/settings/sessions"), "root-sub"))
    assert answer.status_code == 303 and answer.headers["location"] == f"{base}/settings/sessions"
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = http.get(_consent(_to_provider(http, elsewhere), "root-sub"))
        assert answer.status_code == 303 and answer.headers["location"] == f"{base}/", elsewhere
    http.close()

    # With two-factor sign-in on, the provider is the first step only: the code comes next.
    root = sso.sign_in("root@example.com")
    secret = root.post("/api/v1/users/me/mfa").json()["secret"]
    totp = pyotp.TOTP(secret)
    assert root.post("/api/v1/users/me/mfa/confirm", json={"code": totp.now()}).status_code == 200
    http, answer = _sign_in(sso, "root-sub")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"{base}/signin#mfa=") and "avocado_refresh" not in http.cookies
    token = location.split("#mfa=", 1)[1]
    code = totp.at(time.time() + totp.interval)  # the next step's code: not the one confirmed with
    done = http.post(f"{AUTH}/mfa", json={"mfa_token": token, "code": code})
    assert done.status_code == 200, done.text
    assert "refresh_token" not in done.json() and "avocado_refresh" in http.cookies  # the cookie, as login's
    assert _me(sso, http)["email"] == "root@example.com"
    http.close()
    # where the person was going is kept through the code step
    http = sso.client()
    answer = http.get(_consent(_to_provider(http, "/settings/sessions"), "root-sub"))
    assert answer.headers["location"].startswith(f"{base}/signin?next=%2Fsettings%2Fsessions#mfa=")
    http.close()


def test_an_account_made_by_sso_deletes_itself_by_typing_its_email(sso: RunningPlatform) -> None:
    issuer = sso.settings.oidc_issuer
    assert issuer is not None
    root = sso.sign_in("root@example.com")
    root.patch("/api/v1/admin/settings", json={"signup_policy": "open"})
    _set_person(issuer, "bea-at-idp", email="bea@example.com", email_verified=True, name="Bea")
    http, answer = _sign_in(sso, "bea-at-idp")
    assert answer.status_code == 303
    me = _me(sso, http)
    assert me["has_password"] is False and root.get("/api/v1/users/me").json()["has_password"] is True
    token = http.post(f"{AUTH}/refresh", headers={"X-CSRF-Token": http.cookies["avocado_csrf"]}).json()
    bea = {"Authorization": f"Bearer {token['access_token']}"}
    for body in ({}, {"confirm_email": "someone@example.com"}, {"password": PASSWORD}):
        refused = http.request("DELETE", "/api/v1/users/me", json=body, headers=bea)
        assert refused.status_code == 422 and "confirm_email" in refused.json()["detail"], body
    deleted = http.request(
        "DELETE", "/api/v1/users/me", json={"confirm_email": "Bea@Example.com"}, headers=bea
    )
    assert deleted.status_code == 204
    assert sso.platform.identities.list(me["id"]) == []
    # an account with a password still needs it
    assert (
        root.request("DELETE", "/api/v1/users/me", json={"confirm_email": "root@example.com"}).status_code
        == 422
    )
