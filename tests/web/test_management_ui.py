"""Management and avatars in Chromium against a real platform process on PostgreSQL: in front of a
real gateway with its master key, the admin pages for the gateway's nodes and usage per user are
there and show them; directly in front of a node they are hidden. A picture uploaded on the profile
page shows in the app shell, survives a reload and is removed; a file that is no image is refused in
words. axe-core checks the new pages (0 serious or critical)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.db.support import empty_public_schema
from tests.gateway.support import Built, start_built
from tests.platform.accounts.test_avatar import png
from tests.support import RunningNode
from tests.web.conftest import FAILED, NewContext
from tests.web.support import PlatformProcess, platform_process
from tests.web.test_accounts_ui import assert_accessible, open_account_menu, register
from tests.web.test_settings_ui import signed_in

MASTER = "web-management-master-key-0123456789abcdef"


@pytest.fixture
def gateway(request: pytest.FixtureRequest, node: RunningNode, tmp_path: Path) -> Iterator[Built | None]:
    """A gateway as ``avocado up`` starts it, for tests marked ``behind_gateway``."""
    if request.node.get_closest_marker("behind_gateway") is None:
        yield None
        return
    built = start_built(
        home=tmp_path / "gateway",
        nodes=[node.url],
        master_key=MASTER,
        require_key=False,
        open_management=True,
    )
    yield built
    built.stop()


@pytest.fixture
def platform(
    request: pytest.FixtureRequest,
    web_build: Path,
    node: RunningNode,
    gateway: Built | None,
    postgres_database: str,
    tmp_path: Path,
) -> Iterator[PlatformProcess]:
    """The platform in front of the gateway with its master key (``behind_gateway``), else the node."""
    empty_public_schema(postgres_database)
    upstream, settings = (node.url, {}) if gateway is None else (gateway.url, {"gateway_key": MASTER})
    with platform_process(tmp_path / "home", postgres_database, upstream, web_build, **settings) as running:
        yield running
        if request.node.stash.get(FAILED, False):
            print(f"--- the platform's log ---\n{running.tail()}")


def admin_nav(page: Page) -> None:
    open_account_menu(page, "Administration")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()


@pytest.mark.behind_gateway
def test_admin_sees_the_gateways_nodes_and_usage(
    platform: PlatformProcess, gateway: Built, node: RunningNode, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")  # the chat page lists the models: a request metered as Ada's
    admin_nav(page)
    section = page.get_by_role("navigation", name="Administration")
    section.get_by_role("link", name="Nodes").click()
    expect(page.get_by_role("heading", name="Nodes")).to_be_visible()
    nodes = page.get_by_role("list", name="Nodes")
    expect(nodes.get_by_text(node.url)).to_be_visible()
    expect(nodes.get_by_text("Healthy")).to_be_visible()
    assert_accessible(page)

    gateway.app.state.keys.flush()  # the gateway writes its counts every 5 s; now, for the test
    section.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    usage = page.get_by_role("list", name="Usage per user")
    expect(usage.get_by_text("ada@example.com")).to_be_visible()
    expect(usage.get_by_text("Ada Lovelace")).to_be_visible()
    assert_accessible(page)


def test_in_front_of_a_node_the_management_pages_are_hidden(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    admin_nav(page)
    section = page.get_by_role("navigation", name="Administration")
    expect(section.get_by_role("link", name="Audit log")).to_be_visible()
    expect(section.get_by_role("link", name="Nodes")).to_have_count(0)
    expect(section.get_by_role("link", name="Usage")).to_have_count(0)
    page.goto("/admin/nodes")  # an old bookmark: it says why there is nothing, rather than failing
    expect(
        page.get_by_text(re.compile("^Nodes are shown when the platform runs in front of"))
    ).to_be_visible()
    assert_accessible(page)


def test_a_picture_on_the_profile_shows_in_the_shell(
    platform: PlatformProcess, new_context: NewContext
) -> None:
    register(platform, "ada@example.com", "Ada Lovelace")
    page = new_context().new_page()
    signed_in(page, "ada@example.com")
    shell = page.get_by_role("navigation", name="Sidebar")
    expect(shell.locator("img.avatar")).to_have_count(0)  # the initial until there is a picture
    open_account_menu(page, "Settings")
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    assert_accessible(page)

    picker = page.locator("#avatar-file")
    picker.set_input_files({"name": "fake.png", "mimeType": "image/png", "buffer": b"%PDF-1.7 not an image"})
    expect(page.get_by_role("alert")).to_contain_text("not an image")
    picker.set_input_files({"name": "me.png", "mimeType": "image/png", "buffer": png(16, 16)})
    expect(shell.locator("img.avatar")).to_be_visible()
    expect(page.get_by_role("img", name="You, as others see you")).to_be_visible()
    assert_accessible(page)

    page.reload()  # it comes back from the platform
    expect(shell.locator("img.avatar")).to_be_visible()
    width = shell.locator("img.avatar").evaluate("image => image.naturalWidth")
    assert width == 16
    page.get_by_role("button", name="Remove picture").click()
    expect(shell.locator("img.avatar")).to_have_count(0)
    expect(page.get_by_role("button", name="Upload a picture…")).to_be_visible()
