"""The web UI's own checks, run with the Python suite so `make test` covers them: its API types are the
ones the platform's OpenAPI gives today, its TypeScript and Svelte type-check, and its Vitest tests pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.web.support import ROOT, WEB, npm_present

pytestmark = pytest.mark.skipif(not npm_present(), reason="npm is not installed here")


@pytest.fixture(scope="module", autouse=True)
def node_modules() -> None:
    if not (WEB / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=WEB, capture_output=True, text=True, timeout=300, check=False)


def test_api_types_are_generated_from_the_current_openapi() -> None:
    """A route or field changed in the platform without `scripts/web_api.py` fails here."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "web_api.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"run scripts/web_api.py to update web/src/lib/api/schema.d.ts\n{done.stdout}{done.stderr}"
    )


def test_typescript_and_svelte_type_check() -> None:
    done = run("npm", "run", "--silent", "check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_vitest() -> None:
    done = run("npx", "vitest", "run", "--reporter=dot")
    assert done.returncode == 0, done.stdout + done.stderr
