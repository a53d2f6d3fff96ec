"""How many of a model's layers go to the GPU(s), estimated before loading, as Ollama estimates it.

A pure function of the model's sizes and the devices' free memory, so it is tested with given
figures on machines without a GPU. The estimate follows Ollama's (``llm/memory.go``):

- a layer is one repeating block's weights plus its share of the KV cache of every slot;
- each GPU keeps a fixed reserve (the CUDA context and cuBLAS workspace; Ollama's 457 MiB), room
  for one more layer as a buffer, and the compute graph (its "full offload" size when every
  layer is on the GPU, the larger "partial offload" size otherwise);
- the blocks are dealt to the GPUs that have room, one at a time; the output layer (output norm and
  output matrix) comes last, as llama.cpp's layer ``n_layer``; ``num_gpu`` caps the count;
- what does not fit stays in host memory: the model runs split between GPU and CPU.

llama.cpp offloads the *last* ``n_gpu_layers`` layers, the output layer first, which is the order
counted here. A model that fits on one GPU goes on one (``split_mode`` none, that GPU as
``main_gpu``): splitting it would only add transfers. Otherwise its layers are split across the
GPUs (``tensor_split`` holds each GPU's layer count, as Ollama passes it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from avocado.units import processor

__all__ = ["GPU_RESERVE", "DeviceShare", "GpuDevice", "LayerSizes", "Offload", "plan_offload"]

# Ollama's CudaMinimumMemory: what a GPU keeps whatever the model (context, cuBLAS workspace).
GPU_RESERVE = 457 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """A GPU as llama.cpp sees it; ``index`` is its place among the GPUs llama.cpp uses, which is
    what ``main_gpu`` and ``tensor_split`` count in."""

    index: int
    name: str  # ggml's device name: "CUDA0"
    description: str  # "NVIDIA H100 80GB HBM3"
    free: int  # bytes
    total: int  # bytes


@dataclass(frozen=True, slots=True)
class LayerSizes:
    """What a model needs in memory, layer by layer, for a given context (all slots) and batch."""

    blocks: tuple[int, ...]  # weights of each repeating block
    output: int  # output norm and output matrix (llama.cpp's extra layer after the blocks)
    kv_per_block: int  # KV cache of one block for the whole context
    graph_full: int  # compute buffers when every layer is on the GPU
    graph_partial: int  # compute buffers when some layers stay on the CPU

    @property
    def layer_count(self) -> int:
        """Layers as llama.cpp and Ollama count them for offload: the blocks and the output."""
        return len(self.blocks) + 1

    def layer(self, block: int) -> int:
        return self.blocks[block] + self.kv_per_block

    @property
    def total(self) -> int:
        """Weights and KV cache of the whole model."""
        return sum(self.blocks) + self.kv_per_block * len(self.blocks) + self.output


@dataclass(frozen=True, slots=True)
class DeviceShare:
    """What one GPU holds of a loaded model."""

    index: int
    name: str
    description: str
    layers: int
    vram: int  # bytes estimated


@dataclass(frozen=True, slots=True)
class Offload:
    """Where a model's layers go, and the memory that takes (Ollama's MemoryEstimate)."""

    layers: int  # n_gpu_layers for llama.cpp: blocks and, when all fit, the output layer
    layer_count: int  # the model's layers, output included
    total: int  # bytes the model takes, GPU and host together (Ollama's TotalSize)
    vram: int = 0  # bytes on the GPUs (Ollama's VRAMSize): /api/ps size_vram
    split_mode: Literal["none", "layer"] = "none"
    main_gpu: int = 0
    tensor_split: tuple[float, ...] = ()  # layers per GPU, when split across several
    devices: tuple[DeviceShare, ...] = ()

    @property
    def host(self) -> int:
        """Bytes that stay in host memory."""
        return self.total - self.vram

    @property
    def processor(self) -> str:
        return processor(self.total, self.vram)


def plan_offload(
    sizes: LayerSizes,
    devices: list[GpuDevice],
    *,
    num_gpu: int | None = None,
    main_gpu: int | None = None,
    tensor_split: tuple[float, ...] | None = None,
    reserve: int = GPU_RESERVE,
) -> Offload:
    """Place a model's layers on ``devices`` (free memory as given).

    ``num_gpu``: layers to offload at most (Ollama's option); None or negative: as many as fit.
    ``main_gpu``: the GPU tried first for a model that fits on one; None: the one with most room.
    ``tensor_split``: fixed proportions per GPU (llama.cpp's option) instead of filling by room.
    """
    limit = sizes.layer_count if num_gpu is None or num_gpu < 0 else min(num_gpu, sizes.layer_count)
    if not devices or limit == 0:
        return Offload(0, sizes.layer_count, sizes.total + sizes.graph_partial)
    if tensor_split is not None:
        return _plan_proportional(sizes, devices, limit, tensor_split, reserve)
    ordered = sorted(devices, key=lambda d: (d.index != main_gpu, -d.free))
    for device in ordered:  # a model that fits on one GPU stays on one
        plan = _deal(sizes, [device], limit, reserve)
        if plan.layers == limit:
            return replace(plan, main_gpu=device.index)
    plan = _deal(sizes, ordered, limit, reserve)
    if len(plan.devices) <= 1:  # only one GPU has room for anything
        index = plan.devices[0].index if plan.devices else ordered[0].index
        return replace(plan, main_gpu=index)
    counts = {share.index: share.layers for share in plan.devices}
    split = tuple(float(counts.get(device.index, 0)) for device in sorted(devices, key=lambda d: d.index))
    main = next(device.index for device in ordered if counts.get(device.index))
    return replace(plan, split_mode="layer", main_gpu=main, tensor_split=split)


def _graph(sizes: LayerSizes, full: bool) -> int:
    return sizes.graph_full if full else sizes.graph_partial


def _deal(sizes: LayerSizes, devices: list[GpuDevice], limit: int, reserve: int) -> Offload:
    """Ollama's loop: the blocks go round the GPUs that still have room, then the output layer."""
    graph = max(sizes.graph_full, sizes.graph_partial)
    buffer = sizes.layer(0) if sizes.blocks else sizes.output
    room = [d for d in devices if d.free >= reserve + graph + 2 * buffer]
    used = {d.index: reserve + buffer for d in room}
    layers = {d.index: 0 for d in room}
    count = 0
    for block in range(len(sizes.blocks)):
        if count >= limit:
            break
        count += _place(room, used, layers, block, sizes.layer(block), graph)
    if count == len(sizes.blocks) and count < limit:
        count += _place(room, used, layers, count, sizes.output, graph)
    return _offload(sizes, devices, count, used, layers)


def _place(
    room: list[GpuDevice], used: dict[int, int], layers: dict[int, int], turn: int, size: int, graph: int
) -> int:
    """Put one layer on the GPU whose turn it is, or the next with room; drop the full ones."""
    while room:
        device = room[turn % len(room)]
        if device.free > used[device.index] + graph + size:
            used[device.index] += size
            layers[device.index] += 1
            return 1
        room.remove(device)
    return 0


def _offload(
    sizes: LayerSizes, devices: list[GpuDevice], count: int, used: dict[int, int], layers: dict[int, int]
) -> Offload:
    """The estimate for ``count`` layers on the GPUs, with each GPU's graph added."""
    full = count == sizes.layer_count
    shares = []
    for device in sorted(devices, key=lambda d: d.index):
        held = layers.get(device.index, 0)
        if held:
            vram = used[device.index] + _graph(sizes, full)
            shares.append(DeviceShare(device.index, device.name, device.description, held, vram))
    vram = sum(share.vram for share in shares)
    return Offload(count, sizes.layer_count, vram + _overflow(sizes, count), vram, devices=tuple(shares))


def _overflow(sizes: LayerSizes, count: int) -> int:
    """Bytes of the layers left on the CPU: the first blocks, and the output unless all fit."""
    kept = len(sizes.blocks) - min(count, len(sizes.blocks))
    left = sum(sizes.layer(block) for block in range(kept))
    return left + (0 if count == sizes.layer_count else sizes.output)


def _plan_proportional(
    sizes: LayerSizes, devices: list[GpuDevice], limit: int, split: tuple[float, ...], reserve: int
) -> Offload:
    """The most layers (up to ``limit``) that fit when each GPU takes its fixed share of them."""
    by_index = sorted(devices, key=lambda d: d.index)
    weights = [max(split[i], 0.0) if i < len(split) else 0.0 for i in range(len(by_index))]
    if sum(weights) <= 0:
        raise ValueError("tensor_split gives every GPU a share of 0")
    for count in range(limit, 0, -1):
        counts = _split_counts(count, weights)
        plan = _fixed(sizes, by_index, count, counts, reserve)
        if plan is not None:
            return plan
    return Offload(0, sizes.layer_count, sizes.total + sizes.graph_partial)


def _split_counts(count: int, weights: list[float]) -> list[int]:
    """How llama.cpp deals ``count`` layers by proportions: each GPU takes the layers whose place
    falls in its stretch of the cumulative split."""
    total = sum(weights)
    bounds, running = [], 0.0
    for weight in weights:
        running += weight
        bounds.append(running / total)
    counts = [0] * len(weights)
    for layer in range(count):
        place = layer / count
        device = next(i for i, bound in enumerate(bounds) if place < bound)
        counts[device] += 1
    return counts


def _fixed(
    sizes: LayerSizes, devices: list[GpuDevice], count: int, counts: list[int], reserve: int
) -> Offload | None:
    """The estimate for a fixed deal of ``count`` layers, or None if a GPU runs out of room."""
    full = count == sizes.layer_count
    graph = _graph(sizes, full)
    first = len(sizes.blocks) + 1 - count  # llama.cpp offloads the last layers
    blocks = len(sizes.blocks)
    layer_sizes = [sizes.layer(b) if b < blocks else sizes.output for b in range(first, first + count)]
    used: dict[int, int] = {}
    layers: dict[int, int] = {}
    start = 0
    for device, held in zip(devices, counts, strict=True):
        if held:
            need = reserve + sum(layer_sizes[start : start + held]) + graph
            if need > device.free:
                return None
            used[device.index], layers[device.index] = need - graph, held
        start += held
    plan = _offload(sizes, devices, count, used, layers)
    split = tuple(float(c) for c in counts)
    main = next(d.index for d, held in zip(devices, counts, strict=True) if held)
    mode: Literal["none", "layer"] = "layer" if sum(1 for c in counts if c) > 1 else "none"
    return replace(plan, split_mode=mode, main_gpu=main, tensor_split=split if mode == "layer" else ())
