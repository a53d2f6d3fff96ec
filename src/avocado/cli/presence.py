"""``avocado status`` (what runs for a home, how it is reached) and ``avocado discover`` (live nodes)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from avocado.cli.client import ClientError, NodeClient
from avocado.discovery import Announcement, DiscoveryWatcher, Registry
from avocado.home import read_holder
from avocado.node.access import KEY_FILE
from avocado.redact import redact_url
from avocado.units import format_size

__all__ = ["register"]

console = Console()
errors = Console(stderr=True)

Home = Annotated[Path | None, typer.Option(help="Data directory, AVOCADO_HOME (default ~/.avocado)")]
Url = Annotated[str | None, typer.Option(help="Ask the node at this URL instead of the one holding --home")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Amqp = Annotated[
    str | None,
    typer.Option("--amqp", help="RabbitMQ to listen on (default AVOCADO_AMQP_URL)", show_default=False),
]
Watch = Annotated[bool, typer.Option("--watch", help="Keep printing changes until interrupted")]
Wait = Annotated[float, typer.Option(help="Seconds to listen for announcements before printing")]


def status(home: Home = None, url: Url = None, as_json: AsJson = False) -> None:
    """Show the node running for a home: engine, public URL, tunnel and announcements."""
    home = home or Path(os.environ.get("AVOCADO_HOME") or Path.home() / ".avocado")
    key = None
    if url is None:
        holder = read_holder(home)
        if holder is None:
            errors.print(f"no avocado node is running for {home}", highlight=False)
            raise typer.Exit(1)
        url, key = holder.url, _kept_key(home)  # the home's own node: its kept key, never another's
    try:
        report = NodeClient(url, api_key=key).get("/api/avocado/status")
    except ClientError as exc:
        errors.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print_status(report)


def _kept_key(home: Path) -> str | None:
    """The key a public node generated for itself in ``home`` (AVOCADO_API_KEY, when set, goes first)."""
    if os.environ.get("AVOCADO_API_KEY"):
        return None
    try:
        return (home / "state" / KEY_FILE).read_text().strip() or None
    except OSError:
        return None


def _access(report: dict[str, Any]) -> str:
    key = report.get("api_key") or {}
    if key.get("required"):
        kept = f", kept in {key['file']}" if key.get("file") else ""
        return f"API key required ({key.get('source')}{kept})"
    if key.get("open_by_choice"):
        return "open: no API key (--public-without-key)"
    return "open: no API key"


_ENGINE_DETAILS = ("prompt_cache", "slots", "gpus", "placement")


def _placement(placement: dict[str, Any]) -> str:
    """Which devices serve a model: "100% GPU, 25/25 layers on CUDA0 (1.2 GiB)"."""
    devices = placement.get("devices") or []
    if not devices:
        return str(placement.get("processor", "100% CPU"))
    shares = ", ".join(f"{d['layers']} on {d['name']} ({format_size(d['size_vram'])})" for d in devices)
    return f"{placement['processor']}, {placement['gpu_layers']}/{placement['layers']} layers: {shares}"


def print_status(report: dict[str, Any]) -> None:
    tunnel = report.get("tunnel") or {}
    engine = report.get("engine") or {}
    rows = [
        ("node", f"avocado {report.get('version')} (pid {report.get('pid')}), {report.get('status')}"),
        ("service id", report.get("service_id")),
        ("local URL", report.get("local_url")),
        ("public URL", redact_url(report.get("public_url") or "-")),
        ("access", _access(report)),
        ("tunnel", f"{tunnel.get('provider')}: {tunnel.get('state')}, restarts {tunnel.get('restarts', 0)}"),
        ("engine", ", ".join(f"{k} {v}" for k, v in engine.items() if k not in _ENGINE_DETAILS)),
    ]
    for gpu in engine.get("gpus") or []:
        free = f"{format_size(gpu['free'])} free of {format_size(gpu['total'])}"
        rows.append(("gpu", f"{gpu['index']}: {gpu['name']} ({gpu['description']}), {free}"))
    for model, placement in (engine.get("placement") or {}).items():
        rows.append(("placement", f"{model}: {_placement(placement)}"))
    for model, slots in (engine.get("slots") or {}).items():
        rows.append(("slots", f"{model}: {slots['busy']} of {slots['total']} busy, {slots['paused']} paused"))
    for model, cache in (engine.get("prompt_cache") or {}).items():
        used = f"{format_size(cache['size'])} of {format_size(cache['limit'])}"
        rows.append(("prompt cache", f"{model}: {cache['prompts']} prompts, {used}"))
    if tunnel.get("last_error"):
        rows.append(("tunnel error", tunnel["last_error"]))
    announce = report.get("announce")
    if announce:
        state = "connected" if announce["connected"] else "not connected"
        waiting = " (nobody listening yet)" if announce.get("nobody_listening") else ""
        rows.append(("announcing", f"{announce['broker']}: {state}, {announce['pending']} pending{waiting}"))
        if announce.get("last_error"):
            rows.append(("broker error", announce["last_error"]))
    else:
        rows.append(("announcing", "off (--announce AMQP_URL)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        console.print(f"{name.ljust(width)}  {value}", highlight=False)


def discover(amqp: Amqp = None, watch: Watch = False, as_json: AsJson = False, wait: Wait = 2.0) -> None:
    """Show the nodes announcing themselves on RabbitMQ (service-discovery exchange)."""
    url = amqp or os.environ.get("AVOCADO_AMQP_URL")
    if not url:
        errors.print("[red]Error:[/red] give the broker with --amqp or AVOCADO_AMQP_URL", highlight=False)
        raise typer.Exit(2)
    try:
        asyncio.run(_discover(url, watch, as_json, wait))
    except KeyboardInterrupt:
        pass
    except (OSError, ConnectionError, TimeoutError) as exc:
        errors.print(f"[red]Error:[/red] cannot reach {redact_url(url)}: {exc}", highlight=False)
        raise typer.Exit(1) from None


async def _discover(url: str, watch: bool, as_json: bool, wait: float) -> None:
    changed = asyncio.Event()
    registry = Registry(on_change=lambda _registry: changed.set())
    async with DiscoveryWatcher(url, registry):
        await asyncio.sleep(wait)  # the probe makes every node announce itself now
        _print_nodes(registry.snapshot(), as_json)
        while watch:
            changed.clear()
            await changed.wait()
            await asyncio.sleep(0.05)  # let a burst of announcements settle into one print
            if not as_json:
                console.rule()
            _print_nodes(registry.snapshot(), as_json)


def _print_nodes(nodes: list[Announcement], as_json: bool) -> None:
    if as_json:
        print(json.dumps([n.model_dump(mode="json", by_alias=True) for n in nodes]), flush=True)
        return
    if not nodes:
        console.print("no nodes announced", highlight=False)
        return
    header = ["SERVICE ID", "URL", "STATUS", "MODELS", "VERSION", "SEQ"]
    rows = [
        [
            n.service_id[:12],
            n.url,
            n.status,
            ", ".join(m.name for m in n.models) or "-",
            n.version,
            str(n.sequence),
        ]
        for n in nodes
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("    ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), flush=True)


def _names(node: Announcement) -> str:
    return ", ".join(m.name for m in node.models) or "-"


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("discover")(discover)
