"""notebooks/avocado.ipynb executed headless, as Colab would run it, with the local broker."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from avocado.discovery import Announcement, DiscoveryWatcher, Registry
from tests.discovery.support import require_broker
from tests.support import free_port, linked_home

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "avocado.ipynb"


def with_parameters(notebook: Any, **values: object) -> Any:
    """Papermill's way: a cell after the one tagged ``parameters`` that sets the given values."""
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))  # type: ignore[no-untyped-call]
    return notebook


class Recorder(Registry):
    """A registry that also keeps every announcement it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Announcement] = []

    def apply(self, announcement: Announcement) -> bool:
        accepted = super().apply(announcement)
        if accepted:
            self.seen.append(announcement)
        return accepted


def watch(broker: str, registry: Recorder, stop: threading.Event, ready: threading.Event) -> None:
    async def run() -> None:
        async with DiscoveryWatcher(broker, registry):
            ready.set()
            await asyncio.to_thread(stop.wait)

    asyncio.run(run())


def output_text(notebook: Any) -> str:
    return "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
    )


def test_notebook_starts_announces_chats_and_stops(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = require_broker()
    monkeypatch.setenv("AVOCADO_AMQP_URL", broker)  # as a Colab secret would give it
    monkeypatch.delenv("AVOCADO_API_KEY", raising=False)  # no key in the secrets: one is made
    port, node_home = free_port(), linked_home(home, tmp_path / "home")
    notebook = with_parameters(
        nbformat.read(NOTEBOOK, as_version=4),  # type: ignore[no-untyped-call]
        TUNNEL="none",
        ENGINE="embedded",  # no Ollama here; no GPU either, so no CUDA build
        TUNNEL_URL=f"http://localhost:{port}",  # a public URL: the node requires a key
        PORT=port,
        HOME=str(node_home),
    )
    registry, stop, ready = Recorder(), threading.Event(), threading.Event()
    watcher = threading.Thread(target=watch, args=(broker, registry, stop, ready), daemon=True)
    watcher.start()
    assert ready.wait(15)
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
        ).execute()
    finally:
        stop.set()
        watcher.join(15)

    text = output_text(notebook)
    public_url = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("public URL:"))
    service_id = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("service id:"))
    assert "stopped, exit status" in text
    assert broker not in text and "guest:guest" not in text
    key = (node_home / "state" / "api-key").read_text().strip()
    assert f"API key: {key} (kept in {node_home}/state/api-key)" in text  # shown to the user
    assert key not in (node_home / "serve.log").read_text()  # the node was given it: nothing printed

    mine = [a for a in registry.seen if a.service_id == service_id]
    assert mine and mine[0].url == public_url and mine[0].status == "online"
    assert mine[-1].status == "offline"
    assert registry.get(service_id) is None
    # The test chat answered through the public URL: its reply was printed between start and stop.
    answer_cell = next(c for c in notebook.cells if "ANSWER = " in c.source)
    assert answer_cell.outputs and answer_cell.outputs[0]["text"].strip()
    # The discovery cell listed this node.
    assert public_url in text.split("ready", 1)[1]
