"""``avocado gateway`` (one endpoint in front of many nodes), ``avocado gateway nodes`` and ``avocado up``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

import avocado
from avocado.cli.client import ClientError, NodeClient
from avocado.cli.keys import home_of, master_key_for
from avocado.config import (
    DEFAULT_PORT,
    GatewaySettings,
    gateway_base_url,
    load_gateway_settings,
    master_key_file,
)
from avocado.node.access import KEY_FILE
from avocado.platform.settings import DEFAULT_PLATFORM_PORT
from avocado.secret_file import SecretFileError, load_or_create_secret, read_secret
from avocado.tunnel.process import orphan_guard

__all__ = ["register"]

console = Console()
errors = Console(stderr=True)

gateway_app = typer.Typer(
    help="One Ollama/OpenAI endpoint in front of many nodes: routing, failover, keys, limits, metrics.",
    invoke_without_command=True,
    no_args_is_help=False,
)

Host = Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")]
Port = Annotated[int | None, typer.Option(help="Port to listen on (default 4000)")]
Nodes = Annotated[
    list[str] | None, typer.Option("--node", help="A node, URL[,api_key]; repeat for more (or AVOCADO_NODES)")
]
Discover = Annotated[
    str | None, typer.Option("--discover", help="Find nodes on this RabbitMQ (or AVOCADO_AMQP_URL)")
]
DiscoverKey = Annotated[
    str | None,
    typer.Option("--discover-key", help="The API key to send to discovered nodes (or AVOCADO_DISCOVER_KEY)"),
]
RedisUrl = Annotated[str | None, typer.Option("--redis-url", help="Share limits with other replicas")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
Home = Annotated[Path | None, typer.Option(help="Data directory, AVOCADO_HOME (default ~/.avocado)")]
GatewayUrl = Annotated[
    str | None,
    typer.Option("--gateway", help="The gateway (default: AVOCADO_GATEWAY_URL or AVOCADO_HOST)"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _settings(config: Path | None, **overrides: object) -> GatewaySettings:
    try:
        return load_gateway_settings(config, **overrides)
    except (ValidationError, FileNotFoundError) as exc:
        from avocado.cli.main import settings_error

        errors.print(f"[red]Error:[/red] invalid settings: {settings_error(exc)}", highlight=False)
        raise typer.Exit(2) from None


def _serve(settings: GatewaySettings, banner: str) -> None:
    import uvicorn

    from avocado.gateway.build import build_gateway
    from avocado.logs import configure_logging
    from avocado.serving import uvicorn_options

    configure_logging(settings.log_level, settings.log_format, settings.logs_dir)
    application = build_gateway(settings)
    typer.echo(banner, err=True)
    uvicorn.run(application, host=settings.host, port=settings.port, **uvicorn_options(settings))


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Host = None,
    port: Port = None,
    node: Nodes = None,
    discover: Discover = None,
    discover_key: DiscoverKey = None,
    redis_url: RedisUrl = None,
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """Start the gateway (keys need AVOCADO_MASTER_KEY, which then requires a key on inference unless
    AVOCADO_REQUIRE_KEY=false; AVOCADO_DATABASE_URL for PostgreSQL)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(
        config,
        host=host,
        port=port,
        nodes=node,
        amqp_url=discover,
        discover_key=discover_key,
        redis_url=redis_url,
        home=home,
    )
    url = f"http://{settings.host}:{settings.port}"
    _serve(settings, f"avocado gateway {avocado.__version__} listening on {url}")


@gateway_app.command("nodes")
def nodes(gateway: GatewayUrl = None, as_json: AsJson = False) -> None:
    """List the gateway's nodes: health, breaker, models, requests in flight, latency."""
    url = gateway or gateway_base_url()
    key = master_key_for(url) or os.environ.get("AVOCADO_API_KEY")
    try:
        listing = NodeClient(url, api_key=key).get("/api/avocado/nodes")
    except ClientError as exc:
        errors.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    rows = [
        [
            str(n.get("name")),
            str(n.get("url")),
            str(n.get("health") or ("healthy" if n.get("healthy") else "unhealthy")),
            str(n.get("status")),
            str(n.get("breaker")),
            str(n.get("in_flight")),
            f"{n['latency_ms']:.1f}" if isinstance(n.get("latency_ms"), int | float) else "-",
            ", ".join(n.get("models") or []) or "-",
        ]
        for n in listing.get("nodes", [])
    ]
    header = ["NAME", "URL", "HEALTH", "STATUS", "BREAKER", "IN FLIGHT", "LATENCY MS", "MODELS"]
    _columns(header, rows)


def _columns(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("    ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def up(
    port: Annotated[int, typer.Option(help="The gateway's port: what clients use")] = DEFAULT_PORT,
    node_port: Annotated[int, typer.Option(help="The node's port (loopback only)")] = DEFAULT_PORT + 1,
    platform_port: Annotated[
        int, typer.Option(help="The platform's port: accounts, models and the web UI for people")
    ] = DEFAULT_PLATFORM_PORT,
    home: Home = None,
) -> None:
    """Start a node, a gateway in front of it and the platform on the gateway; Ctrl-C stops them all.

    The gateway gets a master key of its own (AVOCADO_MASTER_KEY, else one generated once into the
    home) for ``avocado keys``, and requires no key on requests: one person, on loopback. The
    platform shares the gateway's database and holds its master key (management: the gateway's
    nodes, usage per user); on a fresh home the first account registered is the admin.
    """
    env = dict(os.environ)
    if home is not None:
        env["AVOCADO_HOME"] = str(home)
    master = _master_key(env)
    node_url = f"http://127.0.0.1:{node_port}"
    serve = [sys.executable, "-m", "avocado", "serve", "--host", "127.0.0.1", "--port", str(node_port)]
    # The node goes with us: stopped in order below, and by the kernel if we are killed outright.
    node = subprocess.Popen([*orphan_guard(), *serve], env=env)
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it runs the ``finally`` below.
    signal.signal(signal.SIGTERM, _exit_quietly)
    platform: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_node(node, node_url)
        key = env.get("AVOCADO_API_KEY") or _kept_node_key(env)
        settings = _settings(
            None,
            port=port,
            home=home,
            nodes=[f"{node_url},{key}" if key else node_url],
            master_key=master,
            # One person on loopback: requests need no key (OpenAI's SDKs send "unused"), and models
            # are managed as on a node; AVOCADO_REQUIRE_KEY still decides when it is set.
            require_key=None if "AVOCADO_REQUIRE_KEY" in env else False,
            open_management=True,
        )
        gateway_url = f"http://{settings.host}:{settings.port}"
        platform_url = f"http://127.0.0.1:{platform_port}"
        platform = _start_platform(env, settings, platform_port, gateway_url)
        nodes_command = "avocado gateway nodes"
        if gateway_url != gateway_base_url():
            nodes_command += f" --gateway {gateway_url}"
        banner = (
            f"avocado {avocado.__version__} is up\n"
            f"  gateway  {gateway_url}   (Ollama and OpenAI APIs: OLLAMA_HOST={gateway_url}, "
            f"base_url={gateway_url}/v1)\n"
            f"  node     {node_url}\n"
            f"  metrics  {gateway_url}/metrics   nodes: {nodes_command}\n"
            f"  platform {platform_url}   (open it in a browser; the first account registered is the admin)"
        )
        _serve(settings, banner)
    finally:
        if platform is not None:
            _stop(platform)
        _stop(node)


def _start_platform(
    env: dict[str, str], settings: GatewaySettings, port: int, gateway_url: str
) -> subprocess.Popen[bytes]:
    """The platform on the gateway, on the same database, which is migrated here first: two servers
    starting together must not both create the tables."""
    from avocado.db import upgrade

    try:
        upgrade(settings.database)
    except Exception as exc:
        errors.print(f"[red]Error:[/red] cannot prepare the database: {exc}", highlight=False)
        raise typer.Exit(1) from None
    command = [sys.executable, "-m", "avocado", "platform", "--host", "127.0.0.1", "--port", str(port)]
    platform_env = {**env, "AVOCADO_PLATFORM_UPSTREAM_URL": gateway_url}
    if settings.master_key is not None and not env.get("AVOCADO_PLATFORM_GATEWAY_KEY", "").strip():
        # The gateway's master key: management (its nodes, usage per user), and the credential the
        # platform calls models with, so each user's requests are metered as theirs.
        platform_env["AVOCADO_PLATFORM_GATEWAY_KEY"] = settings.master_key.get_secret_value()
    if settings.database_url is not None:
        platform_env["AVOCADO_DATABASE_URL"] = settings.database_url.get_secret_value()
    platform = subprocess.Popen([*orphan_guard(), *command], env=platform_env)
    _wait_for_server(platform, f"http://127.0.0.1:{port}/api/v1/health", "the platform", timeout=60)
    return platform


def _master_key(env: dict[str, str]) -> str | None:
    """AVOCADO_MASTER_KEY's when set (``None``: the settings read it); else the one in the home, made
    and announced (where it is, never what) the first time."""
    if env.get("AVOCADO_MASTER_KEY", "").strip():
        return None
    path = master_key_file(home_of(env))
    try:
        key, created = load_or_create_secret(path)
    except (OSError, SecretFileError) as exc:
        errors.print(f"[red]Error:[/red] the gateway's master key: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if created:
        typer.echo(f"the gateway's master key was generated into {path} (avocado keys uses it)", err=True)
    return key


def _kept_node_key(env: dict[str, str]) -> str | None:
    """The key the node generated into the home (a public URL needs one), for the gateway to send."""
    try:
        return read_secret(home_of(env) / "state" / KEY_FILE)
    except (OSError, SecretFileError):
        return None  # the node refused to start with it and said why


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _wait_for_node(node: subprocess.Popen[bytes], url: str, timeout: float = 120.0) -> None:
    _wait_for_server(node, url, "the node", timeout)


def _wait_for_server(process: subprocess.Popen[bytes], url: str, name: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors.print(f"[red]Error:[/red] {name} exited with status {process.returncode}", highlight=False)
            raise typer.Exit(1)
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(process)
    errors.print(f"[red]Error:[/red] {name} did not answer at {url} within {timeout:g} s", highlight=False)
    raise typer.Exit(1)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
    app.command("up")(up)
