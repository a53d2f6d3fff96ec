"""``avocado serve`` and the wiring of every command."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

import avocado
from avocado.cli import credentials as credentials_commands
from avocado.cli import gateway as gateway_commands
from avocado.cli import keys as key_commands
from avocado.cli import models as model_commands
from avocado.cli import platform as platform_commands
from avocado.cli import presence as presence_commands
from avocado.config import Settings, load_settings
from avocado.home import Holder, HomeInUse, HomeLock
from avocado.node.access import ensure_api_key
from avocado.redact import url_secrets
from avocado.secret_file import SecretFileError

__all__ = ["app", "main"]

app = typer.Typer(
    name="avocado",
    help="Run open LLMs anywhere and reach them from everywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_commands.register(app)
presence_commands.register(app)
credentials_commands.register(app)
gateway_commands.register(app)
key_commands.register(app)
platform_commands.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avocado version {avocado.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-v", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Run open LLMs anywhere and reach them from everywhere."""


# ``serve`` flags: absent (None) means "take the setting from the environment, the file or the default".
Host = Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")]
Port = Annotated[int | None, typer.Option(help="Port to listen on (default 11434)")]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key", help="Require 'Authorization: Bearer KEY' on all routes but GET / (or AVOCADO_API_KEY)"
    ),
]
PublicWithoutKey = Annotated[
    bool,
    typer.Option(
        "--public-without-key",
        help="Serve a public URL (--tunnel, --tunnel-url) with no API key: anyone who finds it may use "
        "every route. Without it such a node uses --api-key, or a key generated and kept in the home",
        show_default=False,
    ),
]
AllowedHosts = Annotated[
    str | None,
    typer.Option(
        "--allowed-hosts",
        help="Host names the node also answers to, comma-separated (.example.com: a domain and its "
        "subdomains; *: any); localhost, its addresses and its public URL always pass",
    ),
]
MaxPullSize = Annotated[
    str | None, typer.Option(help='The most one pull may download, e.g. "200GB"; "0": no cap (default 1TiB)')
]
PullAllowNetworks = Annotated[
    str | None,
    typer.Option(
        help="Loopback or private networks pulls may reach while the node has a public URL, "
        "comma-separated (e.g. 10.0.0.0/8); link-local and metadata addresses never"
    ),
]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
Home = Annotated[Path | None, typer.Option(help="Data directory, AVOCADO_HOME (default ~/.avocado)")]
KeepAlive = Annotated[str | None, typer.Option(help="How long idle models stay loaded (default 5m)")]
Parallel = Annotated[int | None, typer.Option(help="Requests decoded together per model (default 4)")]
MaxQueue = Annotated[
    int | None, typer.Option(help="Requests waiting per model beyond --parallel before 503 (default 512)")
]
MaxLoaded = Annotated[int | None, typer.Option(help="Models in memory at once (default 3)")]
MaxMemory = Annotated[
    str | None, typer.Option(help='Memory loaded models may take, e.g. "8GB" (default 80% of RAM)')
]
PromptCache = Annotated[
    str | None,
    typer.Option(help='Memory per model for prompts that left their slot, "0" for none (default 512MiB)'),
]
StreamInterval = Annotated[
    str | None,
    typer.Option(help='Tokens of a fast stream go out at most this often, "0": each at once (default 20ms)'),
]
NumCtx = Annotated[int | None, typer.Option(help="Default context length per request (default 4096)")]
MaxPredict = Annotated[
    int | None,
    typer.Option(help="Most tokens one request may generate, whatever it asks for (default 16384)"),
]
NumGpu = Annotated[
    int | None,
    typer.Option(help="Layers to offload to the GPU(s): -1 as many as fit (default), 0 CPU only"),
]
MainGpu = Annotated[
    int | None, typer.Option(help="GPU for a model that fits on one (default: the one with most free memory)")
]
TensorSplit = Annotated[
    str | None, typer.Option(help='Fixed shares of the layers per GPU, e.g. "3,1" (default: by free memory)')
]
Engine = Annotated[
    str | None,
    typer.Option(
        help="embedded: run models on llama.cpp here (default); ollama: serve in front of an Ollama daemon"
    ),
]
OllamaUrl = Annotated[
    str | None,
    typer.Option(
        "--ollama-url", help="Ollama daemon for --engine ollama (default: start `ollama serve` from PATH)"
    ),
]


def settings_error(exc: ValidationError | FileNotFoundError) -> str:
    """What is wrong, without echoing the values given (an AMQP URL or a key may be among them)."""
    if isinstance(exc, FileNotFoundError):
        return str(exc)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


Tunnel = Annotated[
    str | None, typer.Option(help="Reach the node from anywhere: none (default), ssh, cloudflared or ngrok")
]
TunnelUrl = Annotated[
    str | None, typer.Option(help="The node's public URL (ssh, when the server prints none; or with none)")
]
TunnelDomain = Annotated[str | None, typer.Option(help="Fixed ngrok domain (NGROK_AUTHTOKEN from the env)")]
TunnelSsh = Annotated[
    str | None,
    typer.Option(help="SSH server for --tunnel ssh, user@host[:port] (default nokey@localhost.run)"),
]
TunnelSshKey = Annotated[Path | None, typer.Option(help="Identity file for --tunnel ssh")]
Announce = Annotated[
    str | None,
    typer.Option(
        "--announce",
        help="Announce the node on this RabbitMQ, amqp(s)://... (?cafile=CA.pem: a private CA; "
        "or AVOCADO_AMQP_URL)",
    ),
]
AnnounceInterval = Annotated[float | None, typer.Option(help="Seconds between re-announcements (30)")]


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    api_key: ApiKey = None,
    public_without_key: PublicWithoutKey = False,
    allowed_hosts: AllowedHosts = None,
    config: ConfigFile = None,
    home: Home = None,
    keep_alive: KeepAlive = None,
    parallel: Parallel = None,
    max_queue: MaxQueue = None,
    max_loaded_models: MaxLoaded = None,
    max_memory: MaxMemory = None,
    prompt_cache: PromptCache = None,
    stream_interval: StreamInterval = None,
    max_pull_size: MaxPullSize = None,
    pull_allow_networks: PullAllowNetworks = None,
    num_ctx: NumCtx = None,
    max_predict: MaxPredict = None,
    num_gpu: NumGpu = None,
    main_gpu: MainGpu = None,
    tensor_split: TensorSplit = None,
    engine: Engine = None,
    ollama_url: OllamaUrl = None,
    tunnel: Tunnel = None,
    tunnel_url: TunnelUrl = None,
    tunnel_domain: TunnelDomain = None,
    tunnel_ssh: TunnelSsh = None,
    tunnel_ssh_key: TunnelSshKey = None,
    announce: Announce = None,
    announce_interval: AnnounceInterval = None,
) -> None:
    """Start a node: the Ollama-compatible API on the embedded llama.cpp engine, or in front of Ollama."""
    import uvicorn

    from avocado.logs import configure_logging
    from avocado.serving.protocol import uvicorn_options

    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            api_key=api_key,
            public_without_key=public_without_key or None,  # absent: the env or the file decides
            allowed_hosts=allowed_hosts,
            home=home,
            keep_alive=keep_alive,
            parallel=parallel,
            max_queue=max_queue,
            max_loaded_models=max_loaded_models,
            max_memory=max_memory,
            prompt_cache=prompt_cache,
            stream_interval=stream_interval,
            max_pull_size=max_pull_size,
            pull_allow_networks=pull_allow_networks,
            num_ctx=num_ctx,
            max_predict=max_predict,
            num_gpu=num_gpu,
            main_gpu=main_gpu,
            tensor_split=tensor_split,
            engine=engine,
            ollama_url=ollama_url,
            tunnel=tunnel,
            tunnel_url=tunnel_url,
            tunnel_domain=tunnel_domain,
            tunnel_ssh=tunnel_ssh,
            tunnel_ssh_key=tunnel_ssh_key,
            amqp_url=announce,
            announce_interval=announce_interval,
        )
    except (ValidationError, FileNotFoundError) as exc:
        typer.echo(f"Error: invalid settings: {settings_error(exc)}", err=True)
        raise typer.Exit(2) from None
    try:
        settings, notice = ensure_api_key(settings)
    except (SecretFileError, OSError) as exc:
        typer.echo(f"Error: the node's API key: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format, settings.logs_dir, secrets=_secrets(settings))
    started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    try:  # held until this process ends; the kernel releases it even after a kill -9
        lock = HomeLock(settings.home, Holder(os.getpid(), settings.local_url, started_at))
    except HomeInUse as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        application = _application(settings)
        if notice is not None:
            typer.echo(notice, err=True)  # printed, never logged
        typer.echo(
            f"avocado {avocado.__version__} listening on http://{settings.host}:{settings.port}", err=True
        )
        uvicorn.run(application, host=settings.host, port=settings.port, **uvicorn_options(settings))
    finally:
        lock.release()


def _secrets(settings: Settings) -> list[str]:
    """What the node's log must never show: its key and its broker password (in any spelling)."""
    found = [settings.api_key.get_secret_value()] if settings.api_key is not None else []
    if settings.amqp_url is not None:
        found += url_secrets(settings.amqp_url.get_secret_value())
    return found


def _application(settings: Settings) -> Any:
    from avocado.node.access import OpenNodeRefused
    from avocado.node.proxy import OllamaNotFound, create_proxy_app

    try:
        if settings.engine == "ollama":  # llama.cpp is not loaded (nor needed installed) in front of Ollama
            return create_proxy_app(settings)
        from avocado.node.app import create_app

        return create_app(settings)
    except (OllamaNotFound, OpenNodeRefused) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()
