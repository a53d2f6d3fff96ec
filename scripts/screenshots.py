"""Takes the README's screenshots of the web UI: a real node and platform with a few accounts, Debian's
Chromium through Playwright. Usage: .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Needs the dev install (Playwright), the built UI (scripts/install.sh builds it) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the browser tests' parts (tests/web/support.py) start everything

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from tests.support import start_node  # noqa: E402
from tests.web.support import PlatformProcess, build_web, launch_chromium, platform_process  # noqa: E402

from avocado.config import Settings  # noqa: E402
from avocado.node.app import open_store  # noqa: E402

PASSWORD = "correct horse battery"
PEOPLE = [
    ("ada@example.com", "Ada Lovelace"),
    ("grace@example.com", "Grace Hopper"),
    ("alan@example.com", "Alan Turing"),
    ("katherine@example.com", "Katherine Johnson"),
]
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def populate(platform: PlatformProcess) -> None:
    """Accounts in every state: the admin, two approved people, one waiting; a failed sign-in."""
    with platform.api() as http:
        for email, name in PEOPLE:
            http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name})
        admin = http.post("/api/v1/auth/login", json={"email": PEOPLE[0][0], "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {admin['access_token']}"}
        users = http.get("/api/v1/admin/users", headers=auth).json()["items"]
        for user in users:
            if user["email"] in (PEOPLE[1][0], PEOPLE[2][0]):
                http.patch(f"/api/v1/admin/users/{user['id']}", headers=auth, json={"status": "active"})
        http.post("/api/v1/auth/logout", json={"refresh_token": admin["refresh_token"]})
        http.post("/api/v1/auth/login", json={"email": PEOPLE[1][0], "password": "wrong password"})


def signed_in(browser: Browser, platform: PlatformProcess, **options: object) -> Page:
    context = browser.new_context(
        base_url=platform.url,
        viewport={"width": 1280, "height": 760},
        user_agent=LAPTOP,
        **options,  # type: ignore[arg-type]
    )
    page = context.new_page()
    page.goto("/signin")
    page.get_by_label("E-mail").fill(PEOPLE[0][0])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Hello, Ada").wait_for()
    return page


def settle(page: Page) -> None:
    page.locator('[aria-busy="true"]').first.wait_for(state="detached")
    page.wait_for_timeout(300)  # fonts and the last paint


def take(out: Path, browser: Browser, platform: PlatformProcess) -> list[Path]:
    shots = []
    page = signed_in(browser, platform)
    page.get_by_role("button", name="Model:").wait_for()
    page.get_by_role("button", name="Model:").click()
    settle(page)
    shots.append(out / "chat.png")
    page.screenshot(path=shots[-1])

    page.keyboard.press("Escape")
    page.goto("/admin/users")
    page.locator("[data-email]").first.wait_for()
    settle(page)
    shots.append(out / "admin-users.png")
    page.screenshot(path=shots[-1])
    page.get_by_role("button", name="Account menu").click()  # one session left: the dark one's
    page.get_by_role("menuitem", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.context.close()

    dark = signed_in(browser, platform, color_scheme="dark")
    dark.goto("/settings/sessions")
    dark.get_by_text("This browser").wait_for()
    settle(dark)
    shots.append(out / "sessions-dark.png")
    dark.screenshot(path=shots[-1])
    dark.context.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    web = build_web()
    with tempfile.TemporaryDirectory() as temp:
        home = Path(temp) / "home"
        open_store(Settings(home=home))  # the bundled models, for the model picker
        node = start_node(home)
        try:
            database = f"sqlite:///{temp}/platform.sqlite3"
            with platform_process(Path(temp) / "platform", database, node.url, web) as platform:
                populate(platform)
                with sync_playwright() as playwright:
                    browser = launch_chromium(playwright)
                    for shot in take(args.out, browser, platform):
                        print(f"{shot}: {shot.stat().st_size // 1024} KiB")
                    browser.close()
        finally:
            node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
