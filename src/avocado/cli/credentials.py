"""``avocado credentials``: replace a running node's API key and broker credentials.

Secrets never come from the command line (other users see it in ``ps``, shells keep it): the new
key from ``--api-key-file`` (``-`` for standard input), ``AVOCADO_NEW_API_KEY`` or
``--generate-api-key``; the new broker URL from ``--amqp-url-file`` or ``AVOCADO_NEW_AMQP_URL``.
The current key is ``AVOCADO_API_KEY``, or the key the node keeps in its home.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from avocado.cli.client import ClientError, NodeClient
from avocado.home import read_holder
from avocado.node.access import KEY_FILE

__all__ = ["credentials", "register"]

console = Console()
errors = Console(stderr=True)

Home = Annotated[Path | None, typer.Option(help="Data directory, AVOCADO_HOME (default ~/.avocado)")]
Url = Annotated[str | None, typer.Option(help="The node at this URL instead of the one holding --home")]
KeyFile = Annotated[
    str | None,
    typer.Option(
        "--api-key-file", help="Read the new API key from this file, - for stdin (or AVOCADO_NEW_API_KEY)"
    ),
]
Generate = Annotated[bool, typer.Option("--generate-api-key", help="Make a new API key; it is shown once")]
Overlap = Annotated[
    str | None,
    typer.Option(help='How long the replaced key keeps working, "0" to refuse it at once (node default 10m)'),
]
AmqpFile = Annotated[
    str | None,
    typer.Option(
        "--amqp-url-file",
        help="Read the new broker URL (amqp(s)://user:password@host/) from this file, - for stdin "
        "(or AVOCADO_NEW_AMQP_URL)",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the node's answer as JSON")]


def credentials(
    home: Home = None,
    url: Url = None,
    api_key_file: KeyFile = None,
    generate_api_key: Generate = False,
    previous_key_valid_for: Overlap = None,
    amqp_url_file: AmqpFile = None,
    as_json: AsJson = False,
) -> None:
    """Replace a running node's API key and/or broker credentials; nothing it serves is interrupted."""
    home = home or Path(os.environ.get("AVOCADO_HOME") or Path.home() / ".avocado")
    if api_key_file == "-" and amqp_url_file == "-":
        _fail("only one of --api-key-file and --amqp-url-file can be read from stdin", 2)
    if generate_api_key and api_key_file is not None:
        _fail("give --generate-api-key or --api-key-file, not both", 2)
    new_key = secrets.token_urlsafe(32) if generate_api_key else _secret(api_key_file, "AVOCADO_NEW_API_KEY")
    new_url = _secret(amqp_url_file, "AVOCADO_NEW_AMQP_URL")
    if new_key is None and new_url is None:
        _fail("nothing to change: give --api-key-file, --generate-api-key or --amqp-url-file", 2)
    body: dict[str, Any] = {"api_key": new_key, "amqp_url": new_url}
    if previous_key_valid_for is not None:
        body["previous_key_valid_for"] = previous_key_valid_for
    try:
        answer = _client(home, url).post("/api/avocado/credentials", {k: v for k, v in body.items() if v})
    except ClientError as exc:
        _fail(str(exc), 1)
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        _print(answer)
    if generate_api_key:
        console.print(f"new API key (shown once): {new_key}", highlight=False, soft_wrap=True)


def _client(home: Path, url: str | None) -> NodeClient:
    if url is None:
        holder = read_holder(home)
        if holder is None:
            _fail(f"no avocado node is running for {home}", 1)
        url = holder.url
    key = os.environ.get("AVOCADO_API_KEY")
    if not key:  # the key the node generated for itself, when it did
        stored = home / "state" / KEY_FILE
        key = stored.read_text().strip() if stored.is_file() else None
    return NodeClient(url, api_key=key)


def _secret(source: str | None, variable: str) -> str | None:
    """A new secret from a file, stdin (``-``) or an environment variable; ``None`` without any."""
    if source == "-":
        value = sys.stdin.readline().strip()
    elif source is not None:
        try:
            value = Path(source).read_text().strip()
        except OSError as exc:
            _fail(f"cannot read {source}: {exc.strerror}", 2)
    else:
        value = os.environ.get(variable, "").strip()
    if source is not None and not value:
        _fail(f"{'stdin' if source == '-' else source} holds nothing", 2)
    return value or None


def _print(answer: dict[str, Any]) -> None:
    key = answer.get("api_key")
    if key:
        where = "kept in the node's home" if key["stored"] else "until the node stops"
        console.print(
            f"API key replaced ({where}); the keys it replaced work until {key['previous_keys_valid_until']}",
            highlight=False,
        )
    broker = answer.get("amqp_url")
    if broker:
        console.print(f"announcing on {broker['broker']} from now on", highlight=False)
    if answer.get("note"):
        console.print(f"note: {answer['note']}", highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    errors.print(f"[red]Error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("credentials")(credentials)
