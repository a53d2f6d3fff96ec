"""``avocado serve`` and the wiring of every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

import avocado
from avocado.cli import models as model_commands
from avocado.config import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="avocado",
    help="Run open LLMs anywhere and reach them from everywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_commands.register(app)


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


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 11434]")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Require 'Authorization: Bearer KEY' (or AVOCADO_API_KEY)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file")] = None,
    home: Annotated[
        Path | None, typer.Option(help="Data directory (AVOCADO_HOME) [default: ~/.avocado]")
    ] = None,
    keep_alive: Annotated[
        str | None, typer.Option(help="How long idle models stay loaded [default: 5m]")
    ] = None,
    max_queue: Annotated[int | None, typer.Option(help="Requests waiting per model before 503")] = None,
    num_ctx: Annotated[int | None, typer.Option(help="Default context length [default: 4096]")] = None,
) -> None:
    """Start a node: the Ollama-compatible API on the embedded llama.cpp engine."""
    import uvicorn

    from avocado.logs import configure_logging
    from avocado.node.app import create_app

    try:
        settings = load_settings(
            config,
            host=host,
            port=port,
            api_key=api_key,
            home=home,
            keep_alive=keep_alive,
            max_queue=max_queue,
            num_ctx=num_ctx,
        )
    except (ValidationError, FileNotFoundError) as exc:
        typer.echo(f"Error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    application = create_app(settings)
    typer.echo(f"avocado {avocado.__version__} listening on http://{settings.host}:{settings.port}", err=True)
    uvicorn.run(application, host=settings.host, port=settings.port, log_config=None, access_log=False)


def main() -> None:
    app()
