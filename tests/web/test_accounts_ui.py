"""The paths people walk in the web UI, in Chromium against a real platform process on PostgreSQL: the
first admin signs up, a second person signs up and waits, the admin approves them, sessions end from
another browser, a password changes. axe-core checks every page on the way (0 serious or critical)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess, axe_violations, lan_address

PASSWORD = "correct horse battery"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, f"{page.url}:\n" + "\n".join(violations)


def sign_up(page: Page, name: str, email: str, password: str = PASSWORD) -> None:
    page.goto("/signup")
    page.get_by_label("Name").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def register(platform: PlatformProcess, email: str, name: str) -> None:
    """An account made through the API (the first one is the admin), for tests about what comes after."""
    with platform.api() as http:
        body = {"email": email, "password": PASSWORD, "name": name}
        assert http.post("/api/v1/auth/register", json=body).status_code == 201


def open_account_menu(page: Page, item: str) -> None:
    page.get_by_role("button", name="Account menu").click()
    page.get_by_role("menuitem", name=item).click()


def test_first_admin_signs_up_and_approves_the_next_person(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    admin = new_context().new_page()
    admin.goto("/")
    expect(admin).to_have_url(re.compile(r"/signin$"))
    expect(admin.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(admin)

    admin.get_by_role("link", name="Create an account").click()
    expect(admin.get_by_role("heading", name="Create an account")).to_be_visible()
    assert_accessible(admin)
    sign_up(admin, "Ada Lovelace", "ada@example.com")
    expect(admin.get_by_role("heading", name="Hello, Ada")).to_be_visible()
    expect(admin).to_have_url(f"{platform.url}/")

    # The model picker lists the node's models (through the platform's GET /api/v1/models).
    picker = admin.get_by_role("button", name=re.compile("^Model:"))
    expect(picker).to_have_text(re.compile("gemma3:270m"))
    assert_accessible(admin)
    picker.click()
    admin.get_by_role("option", name=re.compile("smollm2:135m")).click()
    expect(picker).to_have_text(re.compile("smollm2:135m"))
    admin.reload()
    expect(picker).to_have_text(re.compile("smollm2:135m"))  # remembered, and still signed in

    # A second person signs up: their account waits for approval, and signing in says so.
    bob = new_context().new_page()
    sign_up(bob, "Bob Babbage", "bob@example.com")
    expect(bob.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    assert_accessible(bob)
    bob.goto("/signin")
    sign_in(bob, "bob@example.com")
    expect(bob.get_by_role("heading", name="Waiting for approval")).to_be_visible()

    # The admin approves them from the users page.
    open_account_menu(admin, "Administration")
    expect(admin).to_have_url(re.compile(r"/admin/users$"))
    row = admin.locator('[data-email="bob@example.com"]')
    expect(row).to_contain_text("Waiting for approval")
    assert_accessible(admin)
    admin.get_by_role("button", name="Waiting for approval").click()
    expect(admin.locator("[data-email]")).to_have_count(1)
    admin.get_by_role("button", name="Approve bob@example.com").click()
    expect(admin.get_by_role("status")).to_contain_text("Bob Babbage can sign in now.")
    admin.get_by_role("button", name="All").click()
    expect(row).to_contain_text("Active")

    bob.goto("/signin")
    sign_in(bob, "bob@example.com")
    expect(bob.get_by_role("heading", name="Hello, Bob")).to_be_visible()
    open_account_menu(bob, "Settings")
    expect(bob.get_by_role("link", name="Administration")).to_have_count(0)
    bob.goto("/admin/users")
    expect(bob.get_by_text("Administrators only.")).to_be_visible()

    # The audit log shows what happened, with the people's addresses.
    admin.get_by_role("link", name="Audit log").click()
    events = admin.get_by_role("list", name="Audit events").get_by_role("listitem")
    approval = events.filter(has_text="Status changed")
    expect(approval).to_contain_text("ada@example.com → bob@example.com")
    expect(approval).to_contain_text("pending → active")
    assert_accessible(admin)
    admin.get_by_label("Show").select_option(label="Sign-in refused")
    expect(events).to_have_count(1)
    expect(events).to_contain_text("bob@example.com")

    # Every other page of the admin, opened by its address (a reload: the session comes back
    # from the refresh cookie each time).
    for path, heading in [
        ("/admin/settings", "Who can sign up"),
        ("/settings/profile", "Profile"),
        ("/settings/security", "Change password"),
        ("/settings/sessions", "Where you are signed in"),
        ("/settings/appearance", "Appearance"),
        ("/settings/two-factor", "Two-factor sign-in"),
        ("/settings/chat", "Chat preferences"),
        ("/settings/api-keys", "API keys"),
    ]:
        admin.goto(path)
        expect(admin.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(admin.locator('[aria-busy="true"]')).to_have_count(0)
        assert_accessible(admin)


def test_a_session_signed_out_from_another_browser_ends(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    laptop = new_context(user_agent=LAPTOP).new_page()
    laptop.goto("/")
    sign_in(laptop, "ada@example.com")
    expect(laptop.get_by_role("heading", name="Hello, Ada")).to_be_visible()

    phone = new_context(user_agent=PHONE, viewport={"width": 375, "height": 740}, is_mobile=True).new_page()
    phone.goto("/settings/sessions")
    expect(phone).to_have_url(re.compile(r"/signin\?next=%2Fsettings%2Fsessions$"))
    sign_in(phone, "ada@example.com")
    expect(phone).to_have_url(re.compile(r"/settings/sessions$"))
    sessions = phone.get_by_role("list", name="Sessions").get_by_role("listitem")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="This browser")).to_contain_text("Safari")
    assert_accessible(phone)

    # The phone signs the laptop out; the laptop's next step finds itself signed out.
    phone.get_by_role("button", name=re.compile(r"^Sign out Firefox")).click()
    expect(sessions).to_have_count(1)
    open_account_menu(laptop, "Settings")
    laptop.get_by_role("link", name="Sessions").click()
    expect(laptop).to_have_url(re.compile(r"/signin"))
    expect(laptop.get_by_role("status").filter(has_text="Your session has ended")).to_be_visible()

    # "Sign out everywhere" ends the phone's own session too.
    phone.get_by_role("button", name="Sign out everywhere").click()
    dialog = phone.get_by_role("dialog", name="Sign out everywhere?")
    assert_accessible(phone)
    dialog.get_by_role("button", name="Sign out everywhere").click()
    expect(phone).to_have_url(re.compile(r"/signin"))
    phone.reload()
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()


def test_changing_the_password_signs_out_the_other_sessions(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    desk, other = new_context().new_page(), new_context().new_page()
    for page in (desk, other):
        page.goto("/")
        sign_in(page, "ada@example.com")
        expect(page.get_by_role("heading", name="Hello, Ada")).to_be_visible()

    open_account_menu(desk, "Settings")
    desk.get_by_role("link", name="Password").click()
    desk.get_by_label("Current password").fill("not my password")
    desk.get_by_label("New password", exact=True).fill("a new horse battery")
    desk.get_by_label("New password again").fill("a new horse battery")
    desk.get_by_role("button", name="Change password").click()
    expect(desk.get_by_text("Wrong password")).to_be_visible()
    expect(desk.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")
    assert_accessible(desk)

    desk.get_by_label("Current password").fill(PASSWORD)
    desk.get_by_role("button", name="Change password").click()
    expect(desk.get_by_role("status")).to_contain_text("Password changed")

    other.reload()
    expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    desk.reload()
    expect(desk.get_by_role("heading", name="Change password")).to_be_visible()

    open_account_menu(desk, "Sign out")
    expect(desk).to_have_url(re.compile(r"/signin$"))
    sign_in(desk, "ada@example.com")
    expect(desk.get_by_role("alert")).to_have_text("Wrong e-mail or password")
    sign_in(desk, "ada@example.com", "a new horse battery")
    expect(desk.get_by_role("heading", name="Hello, Ada")).to_be_visible()


def test_addresses_reload_and_keys_work_on_a_phone_in_the_dark(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    phone = new_context(viewport={"width": 375, "height": 740}, color_scheme="dark").new_page()
    phone.goto("/c/4f1c2a")
    expect(phone).to_have_url(re.compile(r"/signin\?next=%2Fc%2F4f1c2a$"))
    assert_accessible(phone)
    sign_in(phone, "ada@example.com")
    expect(phone).to_have_url(re.compile(r"/c/4f1c2a$"))
    expect(phone.get_by_text("This conversation does not exist.")).to_be_visible()
    phone.reload()
    expect(phone.get_by_text("This conversation does not exist.")).to_be_visible()
    assert_accessible(phone)

    # On a phone the sidebar starts closed and opens over the page.
    sidebar = phone.get_by_role("navigation", name="Sidebar")
    expect(sidebar).to_have_count(0)
    phone.get_by_role("button", name="Open sidebar").click()
    expect(sidebar).to_be_visible()
    assert_accessible(phone)
    phone.keyboard.press("Escape")
    expect(sidebar).to_have_count(0)

    phone.keyboard.press("Control+Shift+O")
    expect(phone).to_have_url(f"{platform.url}/")
    phone.keyboard.press("Control+k")
    expect(phone.get_by_label("Search conversations")).to_be_focused()
    phone.go_back()
    expect(phone).to_have_url(re.compile(r"/c/4f1c2a$"))

    # The theme switch wins over the system's dark.
    phone.goto("/settings/appearance")
    phone.get_by_role("radio", name=re.compile("^Light")).check()
    assert phone.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    assert_accessible(phone)
    phone.reload()
    assert phone.evaluate("document.documentElement.dataset.theme") == "light"

    # The API's own paths are never the UI's page.
    with httpx.Client(base_url=platform.url) as http:
        missing = http.get("/api/v1/no-such-route")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert "not found" in missing.json()["detail"]
        page = http.get("/admin/users")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")


LAN = lan_address()


@pytest.mark.parametrize(
    "secure",
    [
        pytest.param(True, id="secure-context", marks=pytest.mark.platform_settings(access_ttl="1s")),
        pytest.param(
            False,
            id="plain-http-on-a-lan",
            marks=[
                pytest.mark.platform_settings(access_ttl="1s", host=LAN or "127.0.0.1"),
                pytest.mark.skipif(LAN is None, reason="this machine has no network address but loopback"),
            ],
        ),
    ],
)
def test_expired_access_tokens_are_renewed_without_signing_out_any_tab(
    platform: PlatformProcess, new_context: NewContext, secure: bool
) -> None:
    """Two tabs of one browser share the refresh cookie. When both find their access token expired
    at once they must not both spend the same refresh token: that is reuse, which ends the session.
    Tabs take turns through a Web Lock, or through localStorage where the page is not a secure
    context and has no Web Locks (a platform reached over plain http on a LAN)."""
    register(platform, "ada@example.com", "Ada Lovelace")
    context = new_context()
    first, second = context.new_page(), context.new_page()
    first.goto("/settings/profile")
    assert first.evaluate("window.isSecureContext && typeof navigator.locks === 'object'") is secure
    sign_in(first, "ada@example.com")
    second.goto("/settings/profile")
    for page in (first, second):
        expect(page.get_by_role("heading", name="Profile")).to_be_visible()

    refreshes: list[str] = []
    context.on(
        "request", lambda request: refreshes.append(request.url) if "/auth/refresh" in request.url else None
    )
    first.wait_for_timeout(6500)  # past both tokens' expiry: 1 s, and the platform's 5 s of leeway
    for page in (first, second):  # both tabs ask at once
        page.get_by_role("link", name="Sessions").click(no_wait_after=True)
    for page in (first, second):
        expect(page.get_by_role("heading", name="Where you are signed in")).to_be_visible()
        expect(page.get_by_role("list", name="Sessions").get_by_role("listitem")).to_have_count(1)
    assert len(refreshes) == 2  # each tab renewed its token, one after the other

    with platform.api() as http:
        token = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        reuse = http.get("/api/v1/admin/audit", params={"action": "session.reuse_detected"}, headers=auth)
    assert reuse.json()["items"] == []


def test_an_administrator_hands_out_a_reset_link(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    register(platform, "bob@example.com", "Bob Babbage")  # waits for approval
    admin = new_context().new_page()
    admin.goto("/admin/users")
    sign_in(admin, "ada@example.com")
    admin.get_by_role("button", name="Actions for bob@example.com").click()
    admin.get_by_role("menuitem", name="Make administrator").click()
    expect(admin.locator('[data-email="bob@example.com"]')).to_contain_text("Administrator")
    admin.get_by_role("button", name="Actions for bob@example.com").click()
    admin.get_by_role("menuitem", name="Create a password reset link").click()
    dialog = admin.get_by_role("dialog", name="Password reset link")
    link = dialog.get_by_label("Reset link").input_value()
    assert link.startswith(f"{platform.url}/reset-password#token=")
    assert_accessible(admin)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # Bob forgot his password: the form answers the same whether or not mail is set up.
    bob = new_context().new_page()
    bob.goto("/signin")
    bob.get_by_role("link", name="Forgot your password?").click()
    # the sign-in page's own E-mail field is there until the new page replaces it: fill the new one
    expect(bob.get_by_role("heading", name="Reset your password")).to_be_visible()
    bob.get_by_label("E-mail").fill("bob@example.com")
    bob.get_by_role("button", name="Send the link").click()
    expect(bob.get_by_role("status").filter(has_text="a link to set a new password")).to_be_visible()
    assert_accessible(bob)

    bob.goto(link)
    bob.get_by_label("New password", exact=True).fill("bob's own new password")
    bob.get_by_label("New password again").fill("bob's own new password")
    assert_accessible(bob)
    bob.get_by_role("button", name="Set password").click()
    expect(bob.get_by_role("status").filter(has_text="Your password is set")).to_be_visible()
    bob.goto("/signin")
    bob.goto(link)  # a reset link works once
    bob.get_by_label("New password", exact=True).fill("yet another password")
    bob.get_by_label("New password again").fill("yet another password")
    bob.get_by_role("button", name="Set password").click()
    expect(bob.get_by_role("alert")).to_contain_text("invalid, already used or expired")

    # Approval is still needed: the admin approves, Bob signs in with his new password.
    admin.get_by_role("button", name="Approve bob@example.com").click()
    expect(admin.locator('[data-email="bob@example.com"]')).to_contain_text("Active")
    bob.goto("/signin")
    sign_in(bob, "bob@example.com", "bob's own new password")
    expect(bob.get_by_role("heading", name="Hello, Bob")).to_be_visible()


@pytest.mark.platform_settings(upstream_url="http://127.0.0.1:9")  # nothing listens there
def test_the_model_picker_says_when_the_model_server_is_down(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    page.goto("/signin")
    sign_in(page, "ada@example.com")
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"model server at http://127\.0\.0\.1:9 cannot be reached")
    )
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    assert_accessible(page)
