"""The limits in Chromium against a real platform process on PostgreSQL: an administrator sets the
users' role limits on the Limits page (a wrong value is named at its field) and one user's own limit
from the Users page; the platform holds what the pages show. axe-core checks both (0 serious or
critical)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.conftest import NewContext
from tests.web.support import PlatformProcess
from tests.web.test_accounts_ui import PASSWORD, assert_accessible, register, sign_in
from tests.web.test_settings_ui import approve


def _admin_api(platform: PlatformProcess, path: str) -> object:
    with platform.api() as http:
        login = http.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        return http.get(path).json()


def test_role_limits_and_a_user_s_own_limits(platform: PlatformProcess, new_context: NewContext) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    register(platform, "bob@example.com", "Bob Babbage")
    approve(platform, "bob@example.com")
    admin = new_context().new_page()
    admin.goto("/admin/limits")
    sign_in(admin, "ada@example.com")
    expect(admin.get_by_role("heading", name="Limits")).to_be_visible()
    users = admin.get_by_role("group", name="Users")
    expect(users.get_by_label("Requests per minute")).to_have_value("")
    assert_accessible(admin)

    users.get_by_label("Requests per minute").fill("lots")
    admin.get_by_role("button", name="Save limits of users").click()
    expect(users.get_by_text(re.compile("valid integer"))).to_be_visible()
    expect(users.get_by_label("Requests per minute")).to_have_attribute("aria-invalid", "true")
    assert_accessible(admin)

    users.get_by_label("Requests per minute").fill("30")
    users.get_by_label("Visible models").fill("smollm2:*, gemma3:270m")
    admin.get_by_role("button", name="Save limits of users").click()
    expect(admin.get_by_text("Limits of users saved.")).to_be_visible()
    saved = _admin_api(platform, "/api/v1/admin/limits")
    assert saved == {
        "admin": {
            "requests_per_minute": None,
            "concurrent_requests": None,
            "tokens_per_day": None,
            "models": None,
        },
        "user": {
            "requests_per_minute": 30,
            "concurrent_requests": None,
            "tokens_per_day": None,
            "models": ["smollm2:*", "gemma3:270m"],
        },
    }
    admin.reload()
    expect(admin.get_by_role("group", name="Users").get_by_label("Requests per minute")).to_have_value("30")

    admin.goto("/admin/users")
    admin.get_by_role("button", name="Actions for bob@example.com").click()
    admin.get_by_role("menuitem", name="Limits…").click()
    dialog = admin.get_by_role("dialog", name="Limits of Bob Babbage")
    expect(dialog.get_by_text("Role's limit: 30")).to_be_visible()
    expect(dialog.get_by_label("Tokens per day", exact=True)).to_be_disabled()
    dialog.get_by_role("checkbox", name="Own limit for tokens per day").check()
    dialog.get_by_label("Tokens per day", exact=True).fill("5000")
    assert_accessible(admin)
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(admin.get_by_text("Limits of Bob Babbage saved.")).to_be_visible()
    expect(dialog).to_be_hidden()

    users_list = _admin_api(platform, "/api/v1/admin/users?q=bob")
    assert isinstance(users_list, dict)
    bob_id = users_list["items"][0]["id"]
    bob = _admin_api(platform, f"/api/v1/admin/users/{bob_id}/limits")
    assert isinstance(bob, dict)
    assert bob["override"] == {"tokens_per_day": 5000}
    assert bob["effective"]["requests_per_minute"] == 30 and bob["effective"]["tokens_per_day"] == 5000

    admin.get_by_role("button", name="Actions for bob@example.com").click()
    admin.get_by_role("menuitem", name="Limits…").click()
    expect(dialog.get_by_label("Tokens per day", exact=True)).to_have_value("5000")
    dialog.get_by_role("button", name="Use the role's limits").click()
    expect(admin.get_by_text("Bob Babbage has their role's limits again.")).to_be_visible()
    bob = _admin_api(platform, f"/api/v1/admin/users/{bob_id}/limits")
    assert isinstance(bob, dict) and bob["override"] == {}
