"""The settings issue 18 added, in Chromium against a real platform process on PostgreSQL: two-factor
sign-in turned on and used to sign in (the code computed by pyotp from the secret the page shows), a
personal API key made, used on /v1 and revoked, preferences kept on the platform and followed by
another browser, and an account deleted. axe-core checks the new pages (0 serious or critical)."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
from playwright.sync_api import Page, expect

from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess
from tests.web.test_accounts_ui import PASSWORD, assert_accessible, open_account_menu, register, sign_in


def signed_in(page: Page, email: str) -> None:
    page.goto("/signin")
    sign_in(page, email)
    expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible()


def approve(platform: PlatformProcess, email: str) -> None:
    """The admin (the first account) lets ``email`` in, through the API."""
    with platform.api() as http:
        login = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        users = http.get("/api/v1/admin/users", params={"q": email}).json()["items"]
        approved = http.patch(f"/api/v1/admin/users/{users[0]['id']}", json={"status": "active"})
        assert approved.status_code == 200, approved.text


def wrong_code(secret: str) -> str:
    """Six digits that are none of the codes accepted around now."""
    totp = pyotp.TOTP(secret)
    accepted = {totp.at(time.time() + shift) for shift in (-30, 0, 30)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def test_two_factor_sign_in_and_an_api_key(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")

    open_account_menu(page, "Settings")
    page.get_by_role("link", name="Two-factor").click()
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    expect(page.get_by_text(re.compile("^Off\\."))).to_be_visible()
    page.get_by_role("button", name="Set up").click()
    secret = page.locator("code[data-secret]").get_attribute("data-secret")
    assert secret and re.fullmatch(r"[A-Z2-7]+", secret)
    expect(page.get_by_role("link", name="open it in the app")).to_have_attribute(
        "href", re.compile(f"^otpauth://totp/.*secret={secret}")
    )
    assert_accessible(page)
    page.get_by_label("Code", exact=True).fill(wrong_code(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_label("Code", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Save these recovery codes now.")).to_be_visible()
    codes = page.locator(".codes li")
    expect(codes).to_have_count(10)
    expect(page.get_by_text("10 recovery codes left.")).to_be_visible()
    recovery = codes.first.inner_text()
    assert_accessible(page)
    page.reload()  # the codes are shown once
    expect(page.get_by_text(re.compile("^On: signing in asks for a code"))).to_be_visible()
    expect(page.locator(".codes li")).to_have_count(0)

    # Sign out and back in: the password, then a code (the next step's: each step's code works once).
    open_account_menu(page, "Sign out")
    expect(page).to_have_url(re.compile(r"/signin$"))
    sign_in(page, "ada@example.com")
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Code").fill("123 456")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_label("Code")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Hello, Ada")).to_be_visible()

    # An API key: shown once, works on /v1, stops working when revoked.
    page.goto("/settings/api-keys")
    expect(page.get_by_text("No keys yet.")).to_be_visible()
    page.get_by_role("button", name="New key").click()
    page.get_by_label("Name").fill("laptop scripts")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Copy your new key “laptop scripts” now.")).to_be_visible()
    key = page.locator("code.key").inner_text()
    expect(page.get_by_text("never used")).to_be_visible()
    assert_accessible(page)
    with platform.api(headers={"Authorization": f"Bearer {key}"}) as http:
        listed = http.get("/v1/models")
        assert listed.status_code == 200, listed.text
        assert listed.json()["object"] == "list"
    page.reload()
    expect(page.locator("code.key")).to_have_count(0)
    expect(page.get_by_text(re.compile("· last used"))).to_be_visible()
    page.get_by_role("button", name="Revoke laptop scripts").click()
    expect(page.get_by_role("status").filter(has_text="revoked")).to_be_visible()
    expect(page.get_by_text("No keys yet.")).to_be_visible()
    with platform.api(headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get("/v1/models").status_code == 401

    # A recovery code signs in once, in place of the authenticator.
    open_account_menu(page, "Sign out")
    sign_in(page, "ada@example.com")
    page.get_by_label("Code").fill(recovery)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Hello, Ada")).to_be_visible()

    # New recovery codes take a code from the authenticator (a wrong one is refused).
    page.goto("/settings/two-factor")
    expect(page.get_by_text("9 recovery codes left.")).to_be_visible()
    page.get_by_role("button", name="New recovery codes").click()
    dialog = page.get_by_role("dialog", name="Make new recovery codes?")
    dialog.get_by_label("Code from your authenticator app").fill(wrong_code(secret))
    dialog.get_by_role("button", name="Make new codes").click()
    expect(dialog.get_by_label("Code from your authenticator app")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    dialog.get_by_role("button", name="Cancel").click()

    # Turning it off with the password (a lost authenticator).
    page.get_by_role("button", name="Turn off").click()
    page.get_by_role("button", name="Lost your authenticator? Use your password").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("dialog").get_by_role("button", name="Turn off").click()
    expect(page.get_by_role("button", name="Set up")).to_be_visible()
    open_account_menu(page, "Sign out")
    sign_in(page, "ada@example.com")
    expect(page.get_by_role("heading", name="Hello, Ada")).to_be_visible()  # no code asked


def test_preferences_follow_the_account_and_the_account_can_be_deleted(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    register(platform, "bob@example.com", "Bob")  # Ada is the admin; Bob deletes his account
    approve(platform, "bob@example.com")
    desk = new_context(color_scheme="light").new_page()
    signed_in(desk, "bob@example.com")

    desk.goto("/settings/chat")
    expect(desk.get_by_role("heading", name="Chat preferences")).to_be_visible()
    model = desk.get_by_label("Default model")
    expect(model).to_be_visible()
    names = [name for name in model.locator("option").all_inner_texts() if name != "The first one listed"]
    assert names, "the node lists no models"
    model.select_option(names[-1])
    desk.get_by_label("System prompt").fill("Answer in one sentence.")
    desk.get_by_role("button", name="Save").click()
    expect(desk.get_by_role("status").filter(has_text="Chat preferences saved")).to_be_visible()
    assert_accessible(desk)

    desk.goto("/settings/appearance")
    desk.get_by_role("radio", name=re.compile("^Dark")).check()
    expect(desk.locator("html")).to_have_attribute("data-theme", "dark")
    assert_accessible(desk)

    # Another browser (light system colours, nothing remembered) follows the account.
    other = new_context(color_scheme="light").new_page()
    signed_in(other, "bob@example.com")
    expect(other.locator("html")).to_have_attribute("data-theme", "dark")
    expect(other.get_by_role("button", name=re.compile("^Model:"))).to_have_text(
        re.compile(re.escape(names[-1]))
    )
    other.goto("/settings/chat")
    expect(other.get_by_label("System prompt")).to_have_value("Answer in one sentence.")
    expect(other.get_by_label("Default model")).to_have_value(names[-1])

    # Deleting the account: a wrong password is refused, the right one ends it everywhere.
    desk.goto("/settings/profile")
    desk.get_by_role("button", name="Delete my account…").click()
    dialog = desk.get_by_role("dialog", name="Delete your account?")
    dialog.get_by_label("Your password").fill("not my password")
    dialog.get_by_role("button", name="Delete my account").click()
    expect(dialog.get_by_label("Your password")).to_have_attribute("aria-invalid", "true")
    assert_accessible(desk)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    desk.get_by_role("button", name="Delete my account…").click()
    dialog.get_by_label("Your password").fill(PASSWORD)
    dialog.get_by_role("button", name="Delete my account").click()
    expect(desk).to_have_url(re.compile(r"/signin\b"))
    expect(desk.get_by_role("status").filter(has_text="Your account was deleted.")).to_be_visible()
    sign_in(desk, "bob@example.com")
    expect(desk.get_by_role("alert")).to_have_text("Wrong e-mail or password")
    with httpx.Client(base_url=platform.url) as http:
        gone = http.post("/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD})
        assert gone.status_code == 401
