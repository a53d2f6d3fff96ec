"""Browser tests' parts: the built web UI, a real ``avocado platform`` process on a real database, Debian's
Chromium driven by Playwright, and axe-core injected into each page.

The screenshot script (``scripts/screenshots.py``) uses the same parts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, Playwright

from tests.support import free_port

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "ROOT",
    "WEB",
    "PlatformProcess",
    "axe_violations",
    "build_web",
    "chromium_present",
    "lan_address",
    "launch_chromium",
    "npm_present",
    "platform_process",
]

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = Path(os.environ.get("AVOCADO_TEST_CHROMIUM", "/usr/bin/chromium"))
# Debian's Chromium headless in a sandbox-less container, with nothing reaching out to the network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Light hashing for tests (the platform's own tests do the same); production refuses it.
FAST_ARGON2 = {"AVOCADO_PLATFORM_ARGON2_MEMORY": "64", "AVOCADO_PLATFORM_ARGON2_TIME": "1"}


SOURCES = ("src", "static", "package-lock.json", "svelte.config.js", "vite.config.ts")


def _stale(index: Path) -> bool:
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    for name in SOURCES:
        source = WEB / name
        files = source.rglob("*") if source.is_dir() else [source]
        if any(path.stat().st_mtime > built for path in files if path.is_file()):
            return True
    return False


def build_web() -> Path:
    """``web/build``, built now (``npm ci`` + ``npm run build``) unless it is newer than its sources, as
    the install script leaves it."""
    build = WEB / "build"
    if _stale(build / "index.html"):
        if not (WEB / "node_modules").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
        subprocess.run(["npm", "run", "build"], cwd=WEB, check=True)
    return build


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


@dataclass
class PlatformProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def api(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def platform_process(
    home: Path, database_url: str, upstream: str, web: Path, **settings: str
) -> Iterator[PlatformProcess]:
    """``avocado platform`` as users start it, in its own process, serving ``web`` at ``/``; ``settings``
    become ``AVOCADO_PLATFORM_<NAME>`` variables."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "platform.log"
    env = {
        **os.environ,
        **FAST_ARGON2,
        "AVOCADO_HOME": str(home),
        "AVOCADO_DATABASE_URL": database_url,
        "AVOCADO_PLATFORM_WEB_DIR": str(web),
        "AVOCADO_PLATFORM_UPSTREAM_URL": upstream,
        **{f"AVOCADO_PLATFORM_{name.upper()}": value for name, value in settings.items()},
    }
    command = [sys.executable, "-m", "avocado", "platform", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = PlatformProcess(f"http://{settings.get('host', '127.0.0.1')}:{port}", process, log)
    try:
        _wait_healthy(running)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(platform: PlatformProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{platform.url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if platform.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the platform did not start:\n{platform.tail()}")
        time.sleep(0.2)


def _axe_source() -> str:
    path = WEB / "node_modules" / "axe-core" / "axe.min.js"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run npm ci in web/")
    return path.read_text()


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of the page as it is now, of the given impacts, one line each."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol, not a <script> tag: the page's CSP would refuse one.
        page.evaluate(f"{_axe_source()}\n;0")
    result = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    lines = []
    for violation in result["violations"]:
        if violation["impact"] not in impacts:
            continue
        targets = [json.dumps(node["target"]) for node in violation["nodes"][:5]]
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']} at {', '.join(targets)}")
    return lines


def lan_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one: a page from there is not
    a secure context, as a platform reached over plain http on a LAN is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def chromium_present() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def npm_present() -> bool:
    return shutil.which("npm") is not None
