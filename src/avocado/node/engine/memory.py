"""How much memory a model will take once loaded, estimated before loading it.

Weights are mapped from the file; the KV cache holds, per layer and per token of every slot, one
key and one value vector per KV head in f16. A fixed allowance covers compute buffers. The figure
is an upper bound: models with sliding-window layers keep less.
"""

from __future__ import annotations

from typing import Any

from avocado.node.store.gguf_info import GGUFInfo

__all__ = ["estimate_model_bytes"]

_COMPUTE_ALLOWANCE = 64 * 1024 * 1024
_F16 = 2


def _number(value: Any, default: int) -> int:
    if isinstance(value, list):  # per-layer lists (some architectures): take the largest
        return max((int(v) for v in value), default=default)
    return int(value) if isinstance(value, int | float) else default


def estimate_model_bytes(info: GGUFInfo, file_size: int, ctx_per_slot: int, slots: int) -> int:
    arch, meta = info.architecture, info.metadata
    layers = _number(meta.get(f"{arch}.block_count"), 0)
    heads = max(_number(meta.get(f"{arch}.attention.head_count"), 1), 1)
    kv_heads = _number(meta.get(f"{arch}.attention.head_count_kv"), heads)
    head_size = info.embedding_length // heads if info.embedding_length else 0
    key_size = _number(meta.get(f"{arch}.attention.key_length"), head_size)
    value_size = _number(meta.get(f"{arch}.attention.value_length"), head_size)
    context = min(ctx_per_slot, info.context_length) if info.context_length else ctx_per_slot
    kv_cache = layers * context * slots * kv_heads * (key_size + value_size) * _F16
    return file_size + kv_cache + _COMPUTE_ALLOWANCE
