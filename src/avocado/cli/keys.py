"""``avocado keys``: create, list and revoke the gateway's virtual API keys over its admin API.

The gateway is ``--gateway URL``, else ``AVOCADO_GATEWAY_URL``, else where client commands find a
node (``AVOCADO_HOST``, default ``http://127.0.0.1:11434``: the gateway of ``avocado up``). The
master key comes from ``AVOCADO_MASTER_KEY`` (a flag would land in the shell history), else, for a
gateway on loopback, from the file ``avocado up`` keeps its gateway's key in
(``AVOCADO_HOME/state/gateway-master-key``): a key made on this machine goes to no other. It is
never printed. ``create`` writes the new key alone on stdout, so ``KEY=$(avocado keys create ci)``
works; everything else about it goes to stderr.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import typer
from rich.console import Console

from avocado.cli.models import human_ago, print_columns
from avocado.config import gateway_base_url, master_key_file

__all__ = ["GatewayAdmin", "home_of", "master_key_for", "register"]

KEYS_PATH = "/api/avocado/keys"

errors = Console(stderr=True)

Gateway = Annotated[
    str | None,
    typer.Option("--gateway", help="The gateway's URL (default: AVOCADO_GATEWAY_URL, else AVOCADO_HOST)"),
]


class AdminError(Exception):
    """The gateway refused, failed, or could not be reached."""


class GatewayAdmin:
    """The admin API of one gateway, called with the master key."""

    def __init__(self, base_url: str, master_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {master_key}"}, timeout=30.0
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise AdminError(f"could not connect to the gateway at {self.base_url}: {exc}") from None
        if not response.is_success:
            try:
                message = response.json().get("error", response.text)
            except (ValueError, AttributeError):
                message = response.text
            raise AdminError(str(message) or f"HTTP {response.status_code}")
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()


def home_of(env: dict[str, str] | None = None) -> Path:
    """The home directory as the settings read it: AVOCADO_HOME, else ``~/.avocado``."""
    given = (os.environ if env is None else env).get("AVOCADO_HOME", "").strip()
    return Path(given) if given else Path.home() / ".avocado"


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def master_key_for(url: str) -> str | None:
    """The master key for the gateway at ``url``: AVOCADO_MASTER_KEY, else ``avocado up``'s file when
    the gateway is on loopback (a key made here is never sent to another machine), else ``None``."""
    given = os.environ.get("AVOCADO_MASTER_KEY", "").strip()
    if given or not _loopback(url):
        return given or None
    path = master_key_file(home_of())
    try:
        if path.stat().st_mode & 0o077:
            raise _fail(f"{path} may be read by others: chmod 600 it")
        return path.read_text().strip() or None
    except OSError:  # no such file: not avocado up's gateway, or it never ran with this home
        return None


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]Error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(1)


def _admin(gateway: str | None) -> GatewayAdmin:
    url = gateway or gateway_base_url()
    master_key = master_key_for(url)
    if not master_key:
        raise _fail(
            "AVOCADO_MASTER_KEY is not set: the admin API needs the gateway's master key"
            " (avocado up's gateway on this machine needs none: it is read from the home)"
        )
    return GatewayAdmin(url, master_key)


def _call(gateway: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    admin = _admin(gateway)
    try:
        return admin.request(method, path, body)
    except AdminError as exc:
        raise _fail(str(exc)) from None
    finally:
        admin.close()


def _models(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _limits(key: dict[str, Any]) -> str:
    parts = [
        f"{key[field]} {unit}"
        for field, unit in (("rpm", "rpm"), ("tpm", "tpm"), ("max_parallel", "parallel"))
        if key.get(field) is not None
    ]
    return ", ".join(parts) or "-"


def _when(stamp: str | None, never: str) -> str:
    return never if stamp is None else stamp.replace("T", " ")[:16] + " UTC"


def _row(key: dict[str, Any]) -> list[str]:
    return [
        key["id"],
        key["name"],
        f"{key['key_prefix']}…",
        ",".join(key["models"]) if key.get("models") is not None else "all",
        _limits(key),
        f"{key['requests']} req, {key['tokens_in']}/{key['tokens_out']} tok",
        human_ago(key["last_used_at"]) if key.get("last_used_at") else "never",
        _when(key.get("expires_at"), "never"),
        key["status"],
    ]


def create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for")],
    models: Annotated[
        str | None, typer.Option(help="Models it may use, comma-separated (default all)")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    max_parallel: Annotated[int | None, typer.Option(help="Requests at once")] = None,
    expires: Annotated[str | None, typer.Option(help='Lifetime, e.g. "30d", "12h" (default never)')] = None,
    gateway: Gateway = None,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    body: dict[str, Any] = {"name": name}
    for field, value in (("models", _models(models)), ("rpm", rpm), ("tpm", tpm),
                         ("max_parallel", max_parallel), ("expires_in", expires)):  # fmt: skip
        if value is not None:
            body[field] = value
    created = _call(gateway, "POST", KEYS_PATH, body)
    errors.print(
        f"created key '{created['name']}' (id {created['id']}); save it now, it is not shown again:",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    print(created["key"])


def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON")] = False,
    gateway: Gateway = None,
) -> None:
    """List keys (their prefixes only), revoked and expired ones included."""
    keys = _call(gateway, "GET", KEYS_PATH)["keys"]
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    header = ["ID", "NAME", "KEY", "MODELS", "LIMITS", "USAGE", "LAST USED", "EXPIRES", "STATUS"]
    print_columns(header, [_row(key) for key in keys])


def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (from avocado keys list)")],
    gateway: Gateway = None,
) -> None:
    """Revoke a key for good: requests with it are refused from then on."""
    _call(gateway, "DELETE", f"{KEYS_PATH}/{quote(key_id, safe='')}")
    errors.print(f"revoked key {key_id}", highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``avocado keys create|list|revoke`` to ``app``."""
    keys = typer.Typer(name="keys", help="Manage the gateway's virtual API keys.", no_args_is_help=True)
    keys.command("create")(create)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke)
    app.add_typer(keys, name="keys")
