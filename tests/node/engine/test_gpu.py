"""The node on a real NVIDIA GPU: offload happens, size_vram is right, the GPU computes what the CPU
computes, GPU memory counts in eviction, and a model too large for what is free runs split.

Marked ``gpu``: they need a CUDA build of llama.cpp (scripts/install.sh with a CUDA toolkit, or the
kit bench/gpu_build.sh makes) and a GPU; elsewhere they skip with the reason. bench/gpu_device.sh
runs them on the lent GPU machine. The model is made here (bench/make_model.py): a small llama with
random weights whose greedy choices have clear winners, so a GPU and the CPU agree unless one
computes wrongly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from avocado.config import Settings
from avocado.node.app import open_store
from avocado.node.engine.gpu import gpu_devices
from avocado.node.engine.llama import Batch, ContextParams, LlamaContext, LlamaModel, Placement
from avocado.node.engine.memory import layer_sizes
from avocado.node.engine.offload import GPU_RESERVE, GpuDevice, plan_offload
from avocado.node.store.building import CreateSpec, create_model
from tests.random_model import PRESETS, write_model
from tests.support import RunningNode, start_node

pytestmark = pytest.mark.gpu

NO_GPU = "no GPU: this llama.cpp build has no GPU backend or found no device (bench/gpu_device.sh runs these)"
MODEL = "random:tiny"
OTHER = "random:tiny-b"
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
TOKENS = 32
NUM_CTX = 2048
PARALLEL = 4
MiB = 1 << 20


@pytest.fixture(scope="module")
def gpus() -> list[GpuDevice]:
    devices = gpu_devices()
    if not devices:
        pytest.skip(NO_GPU)
    return devices


@pytest.fixture(scope="module")
def gpu_home(tmp_path_factory: pytest.TempPathFactory, gpus: list[GpuDevice]) -> Path:
    """A home holding two small random llamas (f32, so the CPU and the GPU differ only in rounding)."""
    home = tmp_path_factory.mktemp("gpu-home")
    store = open_store(Settings(home=home, register_bundled_models=False))
    for name, seed in ((MODEL, 0), (OTHER, 1)):
        weights = write_model(home / f"{seed}.gguf", PRESETS["tiny"], "f32", seed)
        files = {"model.gguf": store.add_blob_file(weights).digest}
        create_model(store, name, CreateSpec(files=files), lambda _step: None)
    return home


@pytest.fixture
def node(gpu_home: Path) -> Iterator[RunningNode]:
    running = start_node(gpu_home, register_bundled_models=False, num_ctx=NUM_CTX, parallel=PARALLEL)
    yield running
    running.stop()


def generate(node: RunningNode, model: str = MODEL, **options: Any) -> dict[str, Any]:
    body = {"model": model, "prompt": PROMPT, "raw": True, "stream": False}
    body["options"] = {"temperature": 0, "num_predict": TOKENS, "seed": 0, **options}
    response = httpx.post(f"{node.url}/api/generate", json=body, timeout=300)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["eval_count"] == TOKENS  # the model never ends early (its end token never wins)
    return answer


def ps(node: RunningNode) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in httpx.get(f"{node.url}/api/ps").json()["models"]}


def placement(node: RunningNode) -> dict[str, Any]:
    engine: dict[str, Any] = httpx.get(f"{node.url}/api/avocado/status").json()["engine"]
    return engine


def free_memory(index: int = 0) -> int:
    return next(d.free for d in gpu_devices() if d.index == index)


def test_a_model_that_fits_goes_whole_on_the_gpu_and_size_vram_is_right(
    node: RunningNode, gpus: list[GpuDevice]
) -> None:
    before = free_memory()  # CUDA is up in this process already (the node asked for the GPUs)
    generate(node)
    used = before - free_memory()
    entry = ps(node)[MODEL]
    runner = node.service.manager.loaded[MODEL].runner
    plan = runner.offload
    assert plan is not None and plan.layers == plan.layer_count  # every block and the output layer
    assert entry["size_vram"] == entry["size"] == plan.vram > 0  # Ollama's "100% GPU"
    report = placement(node)
    assert report["placement"][MODEL]["processor"] == "100% GPU"
    assert [(d["name"], d["layers"]) for d in report["placement"][MODEL]["devices"]] == [
        (gpus[0].name, plan.layer_count)
    ]
    assert report["gpus"][0]["name"] == gpus[0].name and report["gpus"][0]["total"] == gpus[0].total
    # What llama.cpp took on the GPU: at least the weights and KV cache, at most Ollama's estimate
    # (which adds a reserve, a spare layer and a generous compute graph).
    model = node.service.store.resolve(MODEL)
    sizes = layer_sizes(model.info, model.model_path.stat().st_size, NUM_CTX, PARALLEL, 512)
    print(f"GPU memory: estimate {plan.vram / MiB:.0f} MiB, taken {used / MiB:.0f} MiB")
    print(f"weights and KV cache {sizes.total / MiB:.0f} MiB")
    assert sizes.total <= used <= plan.vram


def test_greedy_output_on_the_gpu_agrees_with_the_cpu(node: RunningNode) -> None:
    on_gpu = generate(node)
    assert ps(node)[MODEL]["size_vram"] > 0
    on_cpu = generate(node, num_gpu=0)  # loaded again, every layer on the CPU
    entry = ps(node)[MODEL]
    assert entry["size_vram"] == 0 and placement(node)["placement"][MODEL]["processor"] == "100% CPU"
    assert node.service.manager.loaded[MODEL].runner.config.placement.cpu_only
    assert on_gpu["context"][-TOKENS:] == on_cpu["context"][-TOKENS:]
    assert on_gpu["response"] == on_cpu["response"]


def test_num_gpu_offloads_that_many_layers_and_the_split_model_agrees(node: RunningNode) -> None:
    whole = generate(node)
    split = generate(node, num_gpu=2)  # two layers on the GPU (the last two blocks), the rest on the CPU
    entry = ps(node)[MODEL]
    report = placement(node)["placement"][MODEL]
    assert report["gpu_layers"] == 2 and 0 < entry["size_vram"] < entry["size"]
    assert report["processor"].endswith("CPU/GPU")
    assert split["context"][-TOKENS:] == whole["context"][-TOKENS:]


def test_the_gpus_logits_match_the_cpus(gpu_home: Path, gpus: list[GpuDevice]) -> None:
    """The engine's own layer: the same prompt and tokens through both placements, logits compared
    step by step (rounding apart; a wrong kernel or a layer left out shows far above it)."""
    path = open_store(Settings(home=gpu_home, register_bundled_models=False)).resolve(MODEL).model_path
    runs = []
    for where in (Placement(n_gpu_layers=999), Placement(cpu_only=True)):
        model = LlamaModel(path, placement=where)
        ctx = LlamaContext(model, ContextParams(n_ctx=512, n_batch=128, n_threads=4))
        runs.append(_greedy_logits(model, ctx))
        ctx.close()
        model.close()
    (gpu_tokens, gpu_logits), (cpu_tokens, cpu_logits) = runs
    assert gpu_tokens == cpu_tokens
    for on_gpu, on_cpu in zip(gpu_logits, cpu_logits, strict=True):
        assert np.abs(on_gpu - on_cpu).max() <= 0.01 * on_cpu.std()


def _greedy_logits(
    model: LlamaModel, ctx: LlamaContext, steps: int = 8
) -> tuple[list[int], list[np.ndarray]]:
    prompt = model.tokenize(PROMPT)
    batch = Batch(128)
    for i, token in enumerate(prompt):
        batch.add(token, i, 0, i == len(prompt) - 1)
    tokens, logits = [], []
    for step in range(steps):
        ctx.decode(batch)
        row = ctx.logits(len(batch) - 1).copy()
        logits.append(row)
        tokens.append(int(row.argmax()))
        batch.clear()
        batch.add(tokens[-1], len(prompt) + step, 0, True)
    batch.free()
    return tokens, logits


class MemoryHolder:
    """Another process holding GPU memory (through PyTorch) until only ``leave`` bytes are free."""

    SCRIPT = textwrap.dedent(
        """
        import sys, torch
        leave, held = int(sys.argv[1]), []
        torch.cuda.init()
        while torch.cuda.mem_get_info()[0] > leave + (1 << 20):
            step = min(1 << 28, torch.cuda.mem_get_info()[0] - leave)
            held.append(torch.empty(step, dtype=torch.uint8, device="cuda"))
        print(torch.cuda.mem_get_info()[0], flush=True)
        sys.stdin.read()
        """
    )

    def __init__(self, leave: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(leave)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.free = int(self.process.stdout.readline() or 0)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(30)


@pytest.fixture
def holder_for(gpus: list[GpuDevice]) -> Iterator[Any]:
    pytest.importorskip("torch", reason="holding GPU memory from another process needs PyTorch")
    holders: list[MemoryHolder] = []

    def make(leave: int) -> MemoryHolder:
        holder = MemoryHolder(leave)
        holders.append(holder)
        assert holder.free, "the memory holder did not start"
        return holder

    yield make
    for holder in holders:
        holder.close()


def _plan_vram(node: RunningNode, name: str) -> int:
    model = node.service.store.resolve(name)
    sizes = layer_sizes(model.info, model.model_path.stat().st_size, NUM_CTX, PARALLEL, 512)
    return plan_offload(sizes, gpu_devices()).vram


def test_an_idle_model_leaves_the_gpu_for_one_that_does_not_fit_beside_it(
    node: RunningNode, holder_for: Any
) -> None:
    needs = _plan_vram(node, MODEL)
    holder_for(int(needs * 1.5))  # room for one model, not two
    generate(node, MODEL)
    assert ps(node)[MODEL]["size_vram"] == ps(node)[MODEL]["size"]
    generate(node, OTHER)
    running = ps(node)
    assert list(running) == [OTHER]  # the idle one was evicted for the GPU, not for host memory
    assert running[OTHER]["size_vram"] == running[OTHER]["size"]


def test_a_model_larger_than_the_free_gpu_memory_runs_split(node: RunningNode, holder_for: Any) -> None:
    model = node.service.store.resolve(OTHER)
    sizes = layer_sizes(model.info, model.model_path.stat().st_size, NUM_CTX, PARALLEL, 512)
    whole = generate(node, OTHER)  # loaded whole first, then unloaded to free its memory
    httpx.post(f"{node.url}/api/generate", json={"model": OTHER, "keep_alive": 0}, timeout=60)
    graph = max(sizes.graph_full, sizes.graph_partial)
    holder_for(GPU_RESERVE + graph + 4 * sizes.layer(0))  # the reserve, the graph, a spare layer and 3 more
    split = generate(node, OTHER)
    report = placement(node)["placement"][OTHER]
    assert 0 < report["gpu_layers"] < sizes.layer_count
    assert report["processor"].endswith("CPU/GPU")
    assert split["context"][-TOKENS:] == whole["context"][-TOKENS:]
