"""Fixtures for the browser tests: Chromium (one per session), the built UI, a node whose models the
platform lists, and a fresh platform process on PostgreSQL for each test."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, sync_playwright

from tests.db.support import empty_public_schema, postgres_database
from tests.support import RunningNode
from tests.web.support import (
    PlatformProcess,
    build_web,
    chromium_present,
    launch_chromium,
    npm_present,
    platform_process,
)

__all__ = ["NewContext", "browser", "new_context", "platform", "postgres_database", "web_build"]


@pytest.fixture(scope="session")
def web_build() -> Path:
    if not npm_present() and not (Path(__file__).resolve().parents[2] / "web" / "build").is_dir():
        pytest.skip("npm is not installed here, so the web UI cannot be built (scripts/install.sh builds it)")
    return build_web()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope: Playwright's sync API keeps an event loop running in this thread while it is open,
    # and a test after it that calls asyncio.run() would fail.
    if not chromium_present():
        pytest.skip("Debian's chromium is not installed (scripts/services.sh installs it)")
    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()


NewContext = Callable[..., BrowserContext]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "platform_settings(**settings): AVOCADO_PLATFORM_* for the platform")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[FAILED] = report.failed


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def platform(
    request: pytest.FixtureRequest, web_build: Path, node: RunningNode, postgres_database: str, tmp_path: Path
) -> Iterator[PlatformProcess]:
    """A platform process on an empty PostgreSQL database, listing the test node's models; a test
    marked ``platform_settings(name=value)`` starts it with those settings."""
    marker = request.node.get_closest_marker("platform_settings")
    settings: dict[str, str] = dict(marker.kwargs) if marker else {}
    empty_public_schema(postgres_database)
    with platform_process(tmp_path / "home", postgres_database, node.url, web_build, **settings) as running:
        yield running
        if request.node.stash.get(FAILED, False):
            print(f"--- the platform's log ---\n{running.tail()}")


@pytest.fixture
def new_context(browser: Browser, platform: PlatformProcess) -> Iterator[NewContext]:
    """A factory of browser contexts (each one a separate browser profile with its own cookies). A
    script error or a console error in any of them (a CSP refusal, an exception) fails the test;
    the browser's notes about answers like 401 or 409 are expected and left out."""
    opened: list[BrowserContext] = []
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text} ({message.location.get('url')})")

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("base_url", platform.url)
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        context.on("console", console)
        context.on("weberror", lambda error: errors.append(f"script error: {error.error}"))
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()
    assert not errors, "\n".join(errors)
