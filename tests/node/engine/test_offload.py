"""The GPU offload planner: a pure function of a model's sizes and the GPUs' free memory.

The figures are given (a T4's 15 GiB, two small GPUs, ...); the sizes of the real bundled SmolLM2
come from its GGUF header. What llama.cpp then does with a plan is checked on a GPU (test_gpu.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avocado.config import Settings
from avocado.node.app import open_store
from avocado.node.engine.memory import estimate_model_bytes, layer_sizes
from avocado.node.engine.offload import GPU_RESERVE, GpuDevice, LayerSizes, Offload, plan_offload
from avocado.node.store.store import Model
from avocado.units import processor

GiB = 1 << 30
MiB = 1 << 20
SMOLLM = "smollm2:135m"

# A model of 20 blocks of 100 MiB, a 50 MiB output layer, 10 MiB of KV per block, 200/300 MiB graphs.
SIZES = LayerSizes((100 * MiB,) * 20, 50 * MiB, 10 * MiB, 200 * MiB, 300 * MiB)
LAYER = 110 * MiB  # a block with its KV


def gpu(index: int, free: int) -> GpuDevice:
    return GpuDevice(index, f"CUDA{index}", "NVIDIA Tesla T4", free, 16 * GiB)


def assert_fits(plan: Offload, devices: list[GpuDevice]) -> None:
    free = {d.index: d.free for d in devices}
    for share in plan.devices:
        assert share.vram <= free[share.index]
    assert plan.vram == sum(share.vram for share in plan.devices)
    assert plan.layers == sum(share.layers for share in plan.devices)


def test_a_model_that_fits_goes_whole_on_the_gpu() -> None:
    plan = plan_offload(SIZES, [gpu(0, 15 * GiB)])
    assert plan.layers == plan.layer_count == 21  # 20 blocks and the output layer
    assert plan.vram == plan.total  # nothing left on the CPU
    # Ollama's estimate: reserve, a spare layer, the blocks with their KV, the output, the full graph.
    assert plan.vram == GPU_RESERVE + LAYER + 20 * LAYER + 50 * MiB + 200 * MiB
    assert (plan.split_mode, plan.main_gpu, plan.tensor_split) == ("none", 0, ())
    assert plan.processor == "100% GPU"
    assert [(d.name, d.layers) for d in plan.devices] == [("CUDA0", 21)]


def test_a_model_too_large_runs_split_between_gpu_and_cpu() -> None:
    free = 2 * GiB
    plan = plan_offload(SIZES, [gpu(0, free)])
    assert 0 < plan.layers < plan.layer_count
    # As many blocks as fit beside the reserve, the spare layer and the (larger) partial graph.
    room = free - GPU_RESERVE - LAYER - 300 * MiB
    assert plan.layers == (room - 1) // LAYER
    assert plan.vram == GPU_RESERVE + LAYER + plan.layers * LAYER + 300 * MiB <= free
    left_on_cpu = (20 - plan.layers) * LAYER + 50 * MiB  # the first blocks and the output layer
    assert plan.host == left_on_cpu and plan.total == plan.vram + left_on_cpu
    cpu = round(100 * left_on_cpu / plan.total)
    assert plan.processor == f"{cpu}%/{100 - cpu}% CPU/GPU"


def test_a_gpu_without_room_for_one_layer_gets_none() -> None:
    plan = plan_offload(SIZES, [gpu(0, GPU_RESERVE + 300 * MiB + LAYER)])  # no room for a second layer
    assert (plan.layers, plan.vram, plan.devices) == (0, 0, ())
    assert plan.host == plan.total and plan.processor == "100% CPU"


def test_num_gpu_caps_the_layers() -> None:
    devices = [gpu(0, 15 * GiB)]
    assert plan_offload(SIZES, devices, num_gpu=5).layers == 5
    assert plan_offload(SIZES, devices, num_gpu=0).layers == 0
    assert plan_offload(SIZES, devices, num_gpu=999).layers == 21  # Ollama's "all of them"
    assert plan_offload(SIZES, devices, num_gpu=-1).layers == 21  # as many as fit
    capped = plan_offload(SIZES, devices, num_gpu=20)  # every block, the output stays on the CPU
    assert capped.layers == 20 and capped.host == 50 * MiB


def test_no_gpu_means_every_layer_on_the_cpu() -> None:
    plan = plan_offload(SIZES, [])
    assert (plan.layers, plan.vram, plan.devices) == (0, 0, ())
    assert plan.total == SIZES.total + SIZES.graph_partial


def test_a_model_that_fits_on_one_of_two_gpus_stays_on_one() -> None:
    devices = [gpu(0, 4 * GiB), gpu(1, 8 * GiB)]
    plan = plan_offload(SIZES, devices)
    assert plan.layers == 21 and plan.split_mode == "none"
    assert plan.main_gpu == 1  # the one with most room
    assert [d.index for d in plan.devices] == [1]
    chosen = plan_offload(SIZES, devices, main_gpu=0)  # asked for, and it fits there
    assert chosen.main_gpu == 0 and [d.index for d in chosen.devices] == [0]
    assert_fits(chosen, devices)


def test_a_model_too_large_for_one_gpu_is_split_by_layers() -> None:
    devices = [gpu(0, int(2.2 * GiB)), gpu(1, int(2.2 * GiB))]  # 3 GiB needed on one
    plan = plan_offload(SIZES, devices)
    assert plan.split_mode == "layer" and plan.layers == 21
    assert [d.layers for d in plan.devices] == [11, 10]  # dealt in turn, the output on the first
    assert plan.tensor_split == (11.0, 10.0)  # layer counts, as Ollama passes them
    assert_fits(plan, devices)
    assert plan.processor == "100% GPU"


def test_split_across_gpus_and_cpu_when_both_are_short() -> None:
    devices = [gpu(0, GiB), gpu(1, int(1.5 * GiB))]
    plan = plan_offload(SIZES, devices)
    assert plan.split_mode == "layer" and 0 < plan.layers < 21
    assert_fits(plan, devices)
    assert all(share.layers > 0 for share in plan.devices)
    assert plan.tensor_split == tuple(float(share.layers) for share in plan.devices)


def test_fixed_shares_deal_the_layers_as_llama_cpp_does() -> None:
    devices = [gpu(0, 15 * GiB), gpu(1, 15 * GiB)]
    plan = plan_offload(SIZES, devices, tensor_split=(3.0, 1.0))
    assert plan.layers == 21 and plan.split_mode == "layer"
    # llama.cpp gives layer i of n to the first GPU whose cumulative share exceeds i / n.
    assert [d.layers for d in plan.devices] == [16, 5]
    assert plan.tensor_split == (16.0, 5.0)
    assert_fits(plan, devices)
    only_second = plan_offload(SIZES, devices, tensor_split=(0.0, 1.0))
    assert only_second.split_mode == "none" and only_second.main_gpu == 1


def test_fixed_shares_on_small_gpus_offload_what_fits() -> None:
    devices = [gpu(0, int(1.2 * GiB)), gpu(1, int(1.2 * GiB))]
    plan = plan_offload(SIZES, devices, tensor_split=(1.0, 1.0))
    assert 0 < plan.layers < 21
    assert_fits(plan, devices)
    roomy = [gpu(0, 15 * GiB), gpu(1, 15 * GiB)]
    bigger = plan_offload(SIZES, roomy, tensor_split=(1.0, 1.0), num_gpu=plan.layers + 1)
    assert bigger.layers == plan.layers + 1  # one more fits only with more room
    assert any(bigger.devices[i].vram > devices[i].free for i in range(2))


def test_processor_reads_as_ollama_prints_it() -> None:
    assert processor(1000, 0) == "100% CPU"
    assert processor(1000, 1000) == "100% GPU"
    assert processor(1000, 520) == "48%/52% CPU/GPU"
    assert processor(1000, 2000) == "Unknown"


@pytest.fixture(scope="module")
def smollm(home: Path) -> tuple[Model, LayerSizes]:
    """The bundled SmolLM2 and its sizes for 4 slots of 2048 tokens and batches of 512."""
    model = open_store(Settings(home=home)).resolve(SMOLLM)
    return model, layer_sizes(model.info, model.model_path.stat().st_size, 2048, 4, 512)


def test_layer_sizes_come_from_the_gguf_header(smollm: tuple[Model, LayerSizes]) -> None:
    model, sizes = smollm
    info = model.info
    assert len(sizes.blocks) == 30 and len(set(sizes.blocks)) == 1  # SmolLM2-135M: 30 equal blocks
    # Tied embeddings: the output layer is the token embeddings (and the output norm).
    groups = info.tensor_groups
    assert sizes.output == groups["token_embd"] + groups["output_norm"]
    file_size = model.model_path.stat().st_size
    assert 0 < file_size - sum(groups.values()) < 2 * MiB  # every tensor counted; the rest is the header
    # The KV cache: 4 slots of 2048 tokens, 3 KV heads of 64 dims, a key and a value in f16, per block.
    assert sizes.kv_per_block == 4 * 2048 * 3 * (64 + 64) * 2
    assert sizes.total == sum(groups.values()) + 30 * sizes.kv_per_block
    kv_all = estimate_model_bytes(info, file_size, 2048, 4) - estimate_model_bytes(info, file_size, 0, 4)
    assert kv_all == 30 * sizes.kv_per_block  # the same KV figure the CPU budget uses


def test_smollm2_on_a_t4(smollm: tuple[Model, LayerSizes]) -> None:
    _, sizes = smollm
    plan = plan_offload(sizes, [gpu(0, 15 * GiB)])
    assert plan.layers == 31 and plan.processor == "100% GPU"
    half = plan_offload(sizes, [gpu(0, GPU_RESERVE + sizes.graph_partial + 16 * sizes.layer(0))])
    assert 0 < half.layers < 31 and half.host > 0
