"""How much memory a model will take once loaded, estimated before loading it.

Weights are mapped from the file; the KV cache holds, per layer and per token of every slot, one
key and one value vector per KV head in f16. A fixed allowance covers compute buffers. The figure
is an upper bound: models with sliding-window layers keep less.

:func:`layer_sizes` gives the same figures layer by layer, with Ollama's estimate of the compute
graph, for the GPU offload planner (:mod:`~avocado.node.engine.offload`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avocado.node.engine.offload import LayerSizes
from avocado.node.store.gguf_info import GGUFInfo

__all__ = ["estimate_model_bytes", "layer_sizes"]

_COMPUTE_ALLOWANCE = 64 * 1024 * 1024
_F16 = 2
_F32 = 4


def _number(value: Any, default: int) -> int:
    if isinstance(value, list):  # per-layer lists (some architectures): take the largest
        return max((int(v) for v in value), default=default)
    return int(value) if isinstance(value, int | float) else default


@dataclass(frozen=True, slots=True)
class _Shape:
    layers: int
    heads: int
    kv_heads: int
    key_size: int
    value_size: int
    embedding: int

    @classmethod
    def of(cls, info: GGUFInfo) -> _Shape:
        arch, meta = info.architecture, info.metadata
        heads = max(_number(meta.get(f"{arch}.attention.head_count"), 1), 1)
        head_size = info.embedding_length // heads if info.embedding_length else 0
        return cls(
            layers=_number(meta.get(f"{arch}.block_count"), 0),
            heads=heads,
            kv_heads=_number(meta.get(f"{arch}.attention.head_count_kv"), heads),
            key_size=_number(meta.get(f"{arch}.attention.key_length"), head_size),
            value_size=_number(meta.get(f"{arch}.attention.value_length"), head_size),
            embedding=info.embedding_length,
        )

    def kv_per_layer(self, context: int) -> int:
        return context * self.kv_heads * (self.key_size + self.value_size) * _F16


def _context(info: GGUFInfo, ctx_per_slot: int) -> int:
    return min(ctx_per_slot, info.context_length) if info.context_length else ctx_per_slot


def estimate_model_bytes(info: GGUFInfo, file_size: int, ctx_per_slot: int, slots: int) -> int:
    shape = _Shape.of(info)
    kv_cache = shape.layers * shape.kv_per_layer(_context(info, ctx_per_slot) * slots)
    return file_size + kv_cache + _COMPUTE_ALLOWANCE


def layer_sizes(info: GGUFInfo, file_size: int, ctx_per_slot: int, slots: int, batch: int) -> LayerSizes:
    """The model's memory layer by layer for ``slots`` slots of ``ctx_per_slot`` tokens."""
    shape = _Shape.of(info)
    context = _context(info, ctx_per_slot) * slots
    blocks = info.block_bytes
    output = info.output_bytes
    if len(blocks) != shape.layers:  # groups unknown: the file's bytes spread evenly over the blocks
        per_block = (file_size - output) // shape.layers if shape.layers else 0
        blocks = [per_block] * shape.layers
    full, partial = _graph(shape, info.vocab_size, context, min(batch, context))
    return LayerSizes(tuple(blocks), output, shape.kv_per_layer(context), full, partial)


def _graph(shape: _Shape, vocab: int, context: int, batch: int) -> tuple[int, int]:
    """Ollama's compute-graph estimate (its llama formula, used here for every architecture): with
    every layer on the GPU, and with some on the CPU (which also holds the output projection's
    activations on the GPU). The attention scores for a batch dominate at long contexts."""
    emb, heads, head_size, kv_heads = shape.embedding, shape.heads, shape.key_size, shape.kv_heads
    full = max(
        _F32 * batch * (1 + 4 * emb + context * (1 + heads)),
        _F32 * batch * (emb + vocab),
    )
    partial = _F32 * batch * emb + max(
        _F32 * batch * (1 + emb + max(context, emb))
        + emb * emb * 9 // 16
        + _F32 * context * (batch * heads + head_size * kv_heads),
        _F32 * batch * (emb + vocab) + emb * vocab * 105 // 128,
    )
    return full, partial
