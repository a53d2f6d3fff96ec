"""Single sign-on in the browser: Chromium against a real platform process on PostgreSQL and a real
OpenID provider on loopback (``oidc-provider-mock``). The sign-in page shows "Sign in with NAME" only
when the platform says single sign-on is on; clicking it goes to the provider and back, signed in.
A second person lands on the pending notice (sign-up by approval)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from playwright.sync_api import Browser, Page, expect

from tests.db.support import empty_public_schema
from tests.support import RunningNode
from tests.web.support import PlatformProcess, axe_violations, platform_process


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real OpenID provider on loopback (plain http, which it refuses unless told); its issuer."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_platform(
    web_build: Path, node: RunningNode, postgres_database: str, tmp_path: Path, provider: str
) -> Iterator[PlatformProcess]:
    empty_public_schema(postgres_database)
    settings = {
        "oidc_issuer": provider,
        "oidc_client_id": "avocado-web",
        "oidc_client_secret": "web-client-secret",
        "oidc_name": "Test ID",
    }
    with platform_process(tmp_path / "home", postgres_database, node.url, web_build, **settings) as running:
        yield running


def _person(issuer: str, sub: str, email: str, name: str) -> None:
    """A person the provider vouches for (a verified e-mail)."""
    answer = httpx.put(f"{issuer}/users/{sub}", json={"email": email, "email_verified": True, "name": name})
    assert answer.status_code == 204, answer.text


def _sso(page: Page, platform: PlatformProcess, sub: str) -> None:
    """From the sign-in page, through the provider's consent form, back to the platform."""
    page.goto(f"{platform.url}/signin")
    button = page.get_by_role("link", name="Sign in with Test ID")
    expect(button).to_be_visible()
    button.click()
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize").click()


def test_sign_in_with_the_provider(browser: Browser, sso_platform: PlatformProcess, provider: str) -> None:
    _person(provider, "founder-sub", "founder@example.com", "Founder")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(f"script error: {error.error}"))
    try:
        page = context.new_page()
        page.goto(f"{sso_platform.url}/signin")
        expect(page.get_by_role("link", name="Sign in with Test ID")).to_be_visible()
        violations = axe_violations(page)
        assert not violations, "\n".join(violations)

        _sso(page, sso_platform, "founder-sub")  # the first account: the admin, signed in at once
        expect(page).to_have_url(re.compile(rf"^{re.escape(sso_platform.url)}/?$"))
        expect(page.get_by_text("founder@example.com").first).to_be_visible()

        # A reload keeps the session (the refresh cookie the callback set).
        page.reload()
        expect(page.get_by_text("founder@example.com").first).to_be_visible()

        other = browser.new_context()
        try:
            _person(provider, "second-sub", "second@example.com", "Second")
            second = other.new_page()
            _sso(second, sso_platform, "second-sub")
            expect(second).to_have_url(re.compile(r"/pending$"))

            # Someone whose provider account claims the admin's address, unverified: refused, in words.
            answer = httpx.put(f"{provider}/users/mallory", json={"email": "founder@example.com"})
            assert answer.status_code == 204
            _sso(second, sso_platform, "mallory")
            expect(second).to_have_url(re.compile(r"/signin\?sso_error=unverified_link$"))
            expect(second.get_by_role("alert")).to_contain_text(
                "Test ID does not confirm the address is yours"
            )
        finally:
            other.close()
    finally:
        context.close()
    assert not errors, "\n".join(errors)


def test_no_button_without_sso(
    browser: Browser, web_build: Path, node: RunningNode, postgres_database: str, tmp_path: Path
) -> None:
    empty_public_schema(postgres_database)
    with platform_process(tmp_path / "home", postgres_database, node.url, web_build) as running:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{running.url}/signin")
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            page.wait_for_load_state("networkidle")
            expect(page.get_by_role("link", name=re.compile("Sign in with"))).to_have_count(0)
        finally:
            context.close()
