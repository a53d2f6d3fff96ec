"""Client commands, as Ollama's CLI has them: run, list, ps, show, cp, rm, create, stop, pull, push."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from avocado.cli.client import ClientError, NodeClient
from avocado.node.options import OptionError, coerce_option
from avocado.node.registry.files import model_name_for
from avocado.node.store.building import looks_like_path
from avocado.node.store.modelfile import ModelfileError, parse_modelfile
from avocado.units import processor

__all__ = ["register"]

console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]Error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def human_ago(stamp: str) -> str:
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "Less than a minute ago"


def print_columns(header: list[str], rows: list[list[str]]) -> None:
    """Aligned columns, never truncated (names can be long), as Ollama's tabwriter prints them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("    ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _list() -> None:
    """List models in the node's store."""
    rows = [
        [m["name"], m["digest"][:12], human_size(m["size"]), human_ago(m["modified_at"])]
        for m in NodeClient().get("/api/tags")["models"]
    ]
    print_columns(["NAME", "ID", "SIZE", "MODIFIED"], rows)


def _until(expires_at: str) -> str:
    return "Forever" if expires_at.startswith("2318") else expires_at.replace("T", " ")[:19] + " UTC"


def _ps() -> None:
    """List models loaded in memory."""
    rows = [
        [m["name"], m["digest"][:12], human_size(m["size"]), processor(m["size"], m.get("size_vram", 0)),
         str(m.get("context_length", "")), _until(m["expires_at"])]
        for m in NodeClient().get("/api/ps")["models"]
    ]  # fmt: skip
    print_columns(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows)


def _show(
    model: str,
    modelfile: Annotated[bool, typer.Option("--modelfile", help="Show the Modelfile")] = False,
    parameters: Annotated[bool, typer.Option("--parameters", help="Show parameters")] = False,
    template: Annotated[bool, typer.Option("--template", help="Show the template")] = False,
    system: Annotated[bool, typer.Option("--system", help="Show the system message")] = False,
    license: Annotated[bool, typer.Option("--license", help="Show the license")] = False,
) -> None:
    """Show information about a model."""
    info = NodeClient().post("/api/show", {"model": model})
    for flag, key in ((modelfile, "modelfile"), (parameters, "parameters"), (template, "template"),
                      (system, "system"), (license, "license")):  # fmt: skip
        if flag:
            console.print(info.get(key, ""), markup=False, highlight=False)
            return
    details, meta = info["details"], info.get("model_info", {})
    arch = meta.get("general.architecture", details.get("family", ""))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_row("  architecture", arch)
    table.add_row("  parameters", details.get("parameter_size", ""))
    table.add_row("  context length", str(meta.get(f"{arch}.context_length", "")))
    table.add_row("  embedding length", str(meta.get(f"{arch}.embedding_length", "")))
    table.add_row("  quantization", details.get("quantization_level", ""))
    console.print("  Model")
    console.print(table)
    console.print("\n  Capabilities")
    for capability in info.get("capabilities", []):
        console.print(f"    {capability}")
    if info.get("parameters"):
        console.print("\n  Parameters")
        for line in info["parameters"].splitlines():
            console.print(f"    {line}", markup=False, highlight=False)
    if info.get("license"):
        console.print("\n  License")
        console.print(f"    {info['license'].splitlines()[0]}", markup=False, highlight=False)


def _cp(source: str, destination: str) -> None:
    """Copy a model."""
    NodeClient().post("/api/copy", {"source": source, "destination": destination})
    console.print(f"copied '{source}' to '{destination}'")


def _rm(models: list[str]) -> None:
    """Remove one or more models."""
    client = NodeClient()
    for model in models:
        client.delete("/api/delete", {"model": model})
        console.print(f"deleted '{model}'")


def _stop(model: str) -> None:
    """Unload a model from memory."""
    NodeClient().post("/api/generate", {"model": model, "keep_alive": 0, "stream": False})


def _file_chunks(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            progress(len(chunk))
            yield chunk


def _upload_blob(client: NodeClient, path: Path) -> str:
    """Send a local file to the node's blob store (skipped when it has it already); returns its digest."""
    size = path.stat().st_size
    hasher = hashlib.sha256()
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=errors) as bar:
        task = bar.add_task(f"hashing {path.name}", total=size)
        for chunk in _file_chunks(path, lambda n: bar.advance(task, n)):
            hasher.update(chunk)
        digest = f"sha256:{hasher.hexdigest()}"
        if not client.head(f"/api/blobs/{digest}"):
            upload = bar.add_task(f"copying {path.name}", total=size)
            client.upload(f"/api/blobs/{digest}", _file_chunks(path, lambda n: bar.advance(upload, n)))
    return digest


def _create(
    name: str,
    file: Annotated[Path, typer.Option("--file", "-f", help="Modelfile to build from")] = Path("Modelfile"),
) -> None:
    """Create a model from a Modelfile."""
    try:
        modelfile = parse_modelfile(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror}") from None
    except ModelfileError as exc:
        raise _fail(f"{file}: {exc}") from None
    if modelfile.adapters:
        raise _fail("ADAPTER (LoRA) is not supported yet")
    client = NodeClient()
    body: dict[str, Any] = {"model": name}
    source = modelfile.from_ or ""
    local = (file.parent / Path(source).expanduser()).resolve() if source else None
    if local is not None and (
        local.is_file() or source.startswith((".", "/", "~")) or source.endswith(".gguf")
    ):
        if not local.is_file():
            raise _fail(f"no such file: {source}")
        body["files"] = {local.name: _upload_blob(client, local)}
    else:
        body["from"] = source
    for key in ("template", "system"):
        if getattr(modelfile, key) is not None:
            body[key] = getattr(modelfile, key)
    if modelfile.parameters:
        body["parameters"] = modelfile.parameters
    if modelfile.messages:
        body["messages"] = modelfile.messages
    if modelfile.licenses:
        body["license"] = modelfile.licenses
    for update in client.stream("/api/create", body):
        errors.print(update.get("status", ""), highlight=False)


def _transfer(path: str, model: str, insecure: bool) -> None:
    """Show a pull's or push's progress stream: a bar per layer, status lines for the rest."""
    client = NodeClient()
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=errors) as bars:
        tasks: dict[str, TaskID] = {}
        for update in client.stream(path, {"model": model, "insecure": insecure}):
            status = update.get("status", "")
            key = update.get("digest") or status  # a file pulled by URL has no digest yet
            if update.get("total"):
                if key not in tasks:
                    tasks[key] = bars.add_task(status, total=update["total"])
                bars.update(tasks[key], completed=update.get("completed", 0), total=update["total"])
            else:
                bars.console.print(status, highlight=False)


def _pull(
    model: str,
    insecure: Annotated[bool, typer.Option("--insecure", help="Use http and skip TLS checks")] = False,
) -> None:
    """Pull a model from a registry (another node, or the Ollama library when online), a GGUF file by
    URL, or a GGUF file on this machine (sent to the node as a blob)."""
    local = Path(model).expanduser()
    if looks_like_path(model) or local.is_file():
        _pull_file(local.resolve())
        return
    _transfer("/api/pull", model, insecure)


def _pull_file(path: Path) -> None:
    """A local GGUF file: uploaded as a blob (the node reads no paths), then made a model named after it."""
    if not path.is_file():
        raise _fail(f"no such file: {path}")
    client = NodeClient()
    name = model_name_for(path.name).display
    body = {"model": name, "files": {path.name: _upload_blob(client, path)}}
    for update in client.stream("/api/create", body):
        errors.print(update.get("status", ""), highlight=False)


def _push(
    model: str,
    insecure: Annotated[bool, typer.Option("--insecure", help="Use http and skip TLS checks")] = False,
) -> None:
    """Push a model to the registry its name points at (e.g. HOST:PORT/library/NAME:TAG)."""
    _transfer("/api/push", model, insecure)


def _print_stream(client: NodeClient, body: dict[str, Any]) -> str:
    parts = []
    for chunk in client.stream("/api/chat", body):
        text = chunk.get("message", {}).get("content", "")
        parts.append(text)
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(parts)


_HELP = """/set parameter NAME VALUE  set a sampling or context option (e.g. temperature 0)
/set system TEXT           set the system message
/clear                     forget the conversation
/bye                       exit"""


def _set(command: str, options: dict[str, Any], system: list[str]) -> None:
    """``/set parameter NAME VALUE`` and ``/set system TEXT``, as in ``ollama run``."""
    parts = command.split(maxsplit=3)
    if len(parts) >= 3 and parts[1] == "system":
        system[:] = [command.split(maxsplit=2)[2]]
        errors.print("Set system message.", highlight=False)
    elif len(parts) == 4 and parts[1] == "parameter":
        name, value = parts[2], parts[3]
        try:
            coerced = coerce_option(name, value)
        except OptionError as exc:
            errors.print(f"[red]Error:[/red] {exc}", highlight=False)
            return
        if isinstance(coerced, list):  # stop: each /set adds one more, as in a Modelfile
            options[name] = [*options.get(name, []), *coerced]
        else:
            options[name] = coerced
        errors.print(f"Set parameter '{name}' to '{value}'", highlight=False)
    else:
        errors.print("Usage: /set parameter NAME VALUE | /set system TEXT", highlight=False)


def _interactive(client: NodeClient, model: str) -> None:
    messages: list[dict[str, str]] = []
    options: dict[str, Any] = {}
    system: list[str] = []  # the system message, when one was set
    errors.print("Send a message (/? for help, /bye to quit)", highlight=False)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/bye", "/exit"):
            return
        if text == "/clear":
            messages.clear()
            errors.print("Cleared session context")
            continue
        if text in ("/?", "/help"):
            errors.print(_HELP, highlight=False)
            continue
        if text.startswith("/set"):
            _set(text, options, system)
            continue
        messages.append({"role": "user", "content": line})
        head = [{"role": "system", "content": system[0]}] if system else []
        body: dict[str, Any] = {"model": model, "messages": head + messages}
        if options:
            body["options"] = options
        try:
            answer = _print_stream(client, body)
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": answer})


def _run(
    model: str,
    prompt: Annotated[list[str] | None, typer.Argument(help="Prompt; interactive when omitted")] = None,
    keepalive: Annotated[
        str | None, typer.Option("--keepalive", help="How long the model stays loaded")
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help='Response format ("json")')] = None,
) -> None:
    """Run a model: answer a prompt, or chat interactively."""
    client = NodeClient()
    text = " ".join(prompt or [])
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{text}\n{piped}".strip() if text else piped.strip()
    body: dict[str, Any] = {"model": model}
    if keepalive is not None:
        body["keep_alive"] = keepalive
    if format:
        body["format"] = format
    if text:
        _print_stream(client, {**body, "messages": [{"role": "user", "content": text}]})
        return
    client.post("/api/chat", {**body, "messages": [], "stream": False})  # load it before the first prompt
    _interactive(client, model)


def _guarded(func: Callable[..., None]) -> Callable[..., None]:
    """Turn client errors into a one-line message and exit status 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except ClientError as exc:
            raise _fail(str(exc)) from None

    return wrapper


def register(app: typer.Typer) -> None:
    for name, func in (
        ("run", _run), ("list", _list), ("ps", _ps), ("show", _show), ("cp", _cp),
        ("rm", _rm), ("create", _create), ("stop", _stop), ("pull", _pull), ("push", _push),
    ):  # fmt: skip
        app.command(name)(_guarded(func))
