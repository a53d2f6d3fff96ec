"""The web UI's API types, generated from the platform's OpenAPI document so the two cannot drift.

``scripts/web_api.py`` writes ``web/openapi.json`` (from the app factory, no server needed) and
regenerates ``web/src/lib/api/schema.d.ts`` with openapi-typescript; ``--check`` fails instead when
the committed types differ from what the current API gives (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"


def openapi_document() -> dict[str, Any]:
    """The platform's OpenAPI, from an app built on a throwaway home (nothing is started)."""
    from pydantic import SecretStr

    from avocado.platform.app import create_platform_app
    from avocado.platform.build import open_services
    from avocado.platform.settings import PlatformSettings

    with tempfile.TemporaryDirectory() as home:
        settings = PlatformSettings(home=Path(home), database_url=SecretStr(f"sqlite:///{home}/db.sqlite3"))
        built = open_services(settings)
        try:
            document: dict[str, Any] = create_platform_app(built.platform).openapi()
        finally:
            built.engine.dispose()
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed types are stale")
    args = parser.parse_args(argv)
    (WEB / "openapi.json").write_text(json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n")
    script = "api:check" if args.check else "api:types"
    return subprocess.run(["npm", "run", "--silent", script], cwd=WEB, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
