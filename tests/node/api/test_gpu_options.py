"""GPU options on a machine without a GPU: everything stays on the CPU, as before GPUs were supported.

The node asks llama.cpp for its GPUs (the portable CPU build has none), reports ``size_vram`` 0 in
Ollama's /api/ps shape, accepts ``num_gpu`` and ``main_gpu`` as Ollama does, and refuses values out
of range with a 400. What happens with a GPU is tested in tests/node/engine/test_gpu.py (marker gpu).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from avocado.cli.presence import print_status
from avocado.node.engine.gpu import gpu_devices, gpu_offload_supported
from tests.cli.test_cli import avocado
from tests.node.api.support import assert_error
from tests.support import RunningNode, start_node

SMOLLM = "smollm2:135m"
# The fields of a running model in Ollama's /api/ps (api.ProcessModelResponse).
PS_FIELDS = {"name", "model", "size", "digest", "details", "expires_at", "size_vram", "context_length"}


@pytest.fixture(scope="module")
def cpu_node(home: Path) -> Iterator[RunningNode]:
    if gpu_offload_supported():
        pytest.skip("this machine has a GPU: the tests marked gpu cover it")
    running = start_node(home)
    yield running
    running.stop()


def generate(node: RunningNode, **options: object) -> httpx.Response:
    body = {"model": SMOLLM, "prompt": "Name a colour.", "stream": False}
    body["options"] = {"temperature": 0, "num_predict": 4, **options}
    return httpx.post(f"{node.url}/api/generate", json=body, timeout=120)


def test_llama_cpp_reports_no_gpu_here() -> None:
    if gpu_offload_supported():
        pytest.skip("this machine has a GPU: the tests marked gpu cover it")
    assert gpu_devices() == []


def test_ps_has_ollamas_shape_with_nothing_on_a_gpu(cpu_node: RunningNode) -> None:
    generate(cpu_node).raise_for_status()
    models = httpx.get(f"{cpu_node.url}/api/ps").json()["models"]
    assert [m["name"] for m in models] == [SMOLLM]
    entry = models[0]
    assert set(entry) == PS_FIELDS
    runner = cpu_node.service.manager.loaded[SMOLLM].runner
    assert entry["size_vram"] == 0 and entry["size"] == runner.memory_size > 0  # as before: host memory
    parsed = ollama.Client(host=cpu_node.url).ps().models[0]  # Ollama's own client reads it
    assert parsed.size_vram == 0 and parsed.size == entry["size"]


def test_avocado_ps_shows_the_processor_as_ollama_does(cpu_node: RunningNode) -> None:
    generate(cpu_node).raise_for_status()
    shown = avocado(cpu_node, "ps")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert row.startswith(SMOLLM) and "100% CPU" in row


def test_num_gpu_and_main_gpu_change_nothing_without_a_gpu(cpu_node: RunningNode) -> None:
    generate(cpu_node).raise_for_status()
    runner = cpu_node.service.manager.loaded[SMOLLM].runner
    for options in ({"num_gpu": 0}, {"num_gpu": 99, "main_gpu": 3}, {"num_gpu": -1}):
        response = generate(cpu_node, **options)
        assert response.status_code == 200, response.text
        assert response.json()["eval_count"] > 0
        assert cpu_node.service.manager.loaded[SMOLLM].runner is runner  # not loaded again
    assert runner.offload is None and runner.vram_size == 0
    assert runner.config.placement.n_gpu_layers == 0


def test_gpu_options_out_of_range_are_the_requests_400(cpu_node: RunningNode) -> None:
    assert_error(generate(cpu_node, num_gpu=-2), 400, "num_gpu")
    assert_error(generate(cpu_node, main_gpu=-1), 400, "main_gpu")
    assert_error(generate(cpu_node, num_gpu="all"), 400, "num_gpu")
    assert_error(generate(cpu_node, main_gpu=1.5), 400, "main_gpu")


def test_status_shows_no_gpu_and_each_model_on_the_cpu(cpu_node: RunningNode) -> None:
    generate(cpu_node).raise_for_status()
    engine = httpx.get(f"{cpu_node.url}/api/avocado/status").json()["engine"]
    assert engine["gpus"] == []
    assert engine["placement"][SMOLLM] == {
        "processor": "100% CPU",
        "gpu_layers": 0,
        "size_vram": 0,
        "devices": [],
    }


def test_status_prints_gpus_and_where_each_model_runs(capsys: pytest.CaptureFixture[str]) -> None:
    gib = 1 << 30
    gpus = [{"index": 0, "name": "CUDA0", "description": "Tesla T4", "total": 15 * gib, "free": 14 * gib}]
    on_gpu = {"processor": "100% GPU", "gpu_layers": 31, "layers": 31, "split_mode": "none", "size_vram": gib}
    on_gpu["devices"] = [
        {"index": 0, "name": "CUDA0", "description": "Tesla T4", "layers": 31, "size_vram": gib}
    ]
    on_cpu = {"processor": "100% CPU", "gpu_layers": 0, "size_vram": 0, "devices": []}
    engine = {
        "kind": "embedded",
        "loaded": ["a", "b"],
        "models": 2,
        "gpus": gpus,
        "placement": {"a": on_gpu, "b": on_cpu},
    }
    print_status({"version": "0.1.0", "status": "online", "tunnel": {}, "engine": engine})
    lines = {
        line.split(maxsplit=1)[0] + " " + line.split(maxsplit=1)[1]
        for line in capsys.readouterr().out.splitlines()
    }
    assert "gpu 0: CUDA0 (Tesla T4), 14.0 GiB free of 15.0 GiB" in lines
    assert "placement a: 100% GPU, 31/31 layers: 31 on CUDA0 (1.0 GiB)" in lines
    assert "placement b: 100% CPU" in lines
    assert "engine kind embedded, loaded ['a', 'b'], models 2" in lines  # the details have rows of their own
