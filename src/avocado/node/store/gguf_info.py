"""Read the header of a GGUF file: its metadata and the size of its tensors.

The ``gguf`` package parses every token string into numpy arrays (6 s for SmolLM2's 49k tokens,
far longer for Gemma's 262k); this reader walks the same layout and skips large arrays, in
milliseconds. Layout: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from avocado.node.store.errors import InvalidModelFile

__all__ = ["GGUFInfo", "file_type_name", "human_parameters", "read_gguf_info"]

_MAGIC = b"GGUF"
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_SMALL_ARRAY = 64  # arrays longer than this (token lists, merges) are summarised, not kept

# llama_ftype values as llama.cpp numbers them (general.file_type).
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}  # fmt: skip


def file_type_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    return _FILE_TYPES.get(value, f"type{value}")


def human_parameters(count: int) -> str:
    """Ollama's spelling of a parameter count: ``134.52M``, ``1.2B``."""
    if count >= 1_000_000_000:
        value = count / 1e9
        return f"{int(value)}B" if value.is_integer() else f"{value:.1f}B"
    if count >= 1_000_000:
        value = count / 1e6
        return f"{int(value)}M" if value.is_integer() else f"{value:.2f}M"
    if count >= 1_000:
        return f"{count / 1e3:.0f}K"
    return str(count)


@dataclass(slots=True)
class GGUFInfo:
    architecture: str
    parameter_count: int
    file_type: str
    context_length: int
    embedding_length: int
    metadata: dict[str, Any] = field(default_factory=dict)
    # Bytes of the tensors in the file, grouped as Ollama groups them for its GPU estimate: one
    # entry per repeating block ("blk.0", "blk.1", ...) and one per other tensor name without its
    # ".weight"/".bias" ("token_embd", "output_norm", "output"). None in an info cached before the
    # groups were recorded (the store reads such a file again).
    tensor_groups: dict[str, int] | None = None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def parameter_size(self) -> str:
        return human_parameters(self.parameter_count)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GGUFInfo:
        return cls(**data)

    @property
    def block_bytes(self) -> list[int]:
        """Bytes of each repeating block's weights, in block order (empty when unknown)."""
        groups = self.tensor_groups or {}
        count = sum(1 for name in groups if name.startswith("blk."))
        return [groups.get(f"blk.{i}", 0) for i in range(count)]

    @property
    def output_bytes(self) -> int:
        """Bytes of what llama.cpp offloads as the extra layer after the blocks: the output norm and
        the output matrix (the token embeddings when the model ties them)."""
        groups = self.tensor_groups or {}
        return groups.get("output_norm", 0) + groups.get("output", groups.get("token_embd", 0))

    @property
    def vocab_size(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, dict):
            return int(tokens.get("length", 0))
        return len(tokens) if isinstance(tokens, list) else 0


class _Reader:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def read(self, size: int) -> bytes:
        data = self.handle.read(size)
        if len(data) != size:
            raise InvalidModelFile("GGUF file is truncated")
        return data

    def scalar(self, kind: int) -> Any:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.scalar(10)
        return self.read(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array()
        if kind not in _SCALARS:
            raise InvalidModelFile(f"GGUF metadata has unknown value type {kind}")
        return self.scalar(kind)

    def array(self) -> Any:
        kind = self.scalar(4)
        count = self.scalar(10)
        if count <= _SMALL_ARRAY:
            return [self.value(kind) for _ in range(count)]
        if kind == _STRING:
            for _ in range(count):
                self.handle.seek(self.scalar(10), 1)
        elif kind in _SCALARS:
            self.handle.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
        else:
            for _ in range(count):
                self.value(kind)
        return {"type": "array", "length": count}


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header of ``path``; raises :class:`InvalidModelFile` if it is not GGUF."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidModelFile(f"cannot open model file {path}: {exc.strerror}") from None
    with handle:
        reader = _Reader(handle)
        if handle.read(4) != _MAGIC:
            raise InvalidModelFile(f"{path.name} is not a GGUF file")
        version = reader.scalar(4)
        if version < 2:
            raise InvalidModelFile(f"GGUF version {version} is not supported")
        tensor_count, kv_count = reader.scalar(10), reader.scalar(10)
        if tensor_count > 1 << 24 or kv_count > 1 << 20:
            raise InvalidModelFile("GGUF header is implausible")
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = reader.string()
            metadata[key] = reader.value(reader.scalar(4))
        parameters = 0
        offsets: list[tuple[int, str]] = []
        for _ in range(tensor_count):
            name = reader.string()
            dims = [reader.scalar(10) for _ in range(reader.scalar(4))]
            reader.scalar(4)  # tensor type
            offsets.append((reader.scalar(10), name))
            count = 1
            for dim in dims:
                count *= dim
            parameters += count
        alignment = int(metadata.get("general.alignment", 32) or 32)
        data_start = -(-handle.tell() // alignment) * alignment
        data_size = max(path.stat().st_size - data_start, 0)
    arch = str(metadata.get("general.architecture", "unknown"))
    return GGUFInfo(
        architecture=arch,
        parameter_count=parameters,
        file_type=file_type_name(metadata.get("general.file_type")),
        context_length=int(metadata.get(f"{arch}.context_length", 0) or 0),
        embedding_length=int(metadata.get(f"{arch}.embedding_length", 0) or 0),
        metadata=metadata,
        tensor_groups=_group_sizes(offsets, data_size),
    )


def _group_sizes(offsets: list[tuple[int, str]], data_size: int) -> dict[str, int]:
    """Bytes per tensor group: each tensor runs from its offset to the next one's (the padding
    between them included), the last one to the end of the file."""
    groups: dict[str, int] = {}
    ordered = sorted(offsets)
    ends = [offset for offset, _ in ordered[1:]] + [data_size]
    for (offset, name), end in zip(ordered, ends, strict=True):
        group = _group_of(name)
        groups[group] = groups.get(group, 0) + max(end - offset, 0)
    return groups


def _group_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "blk" and len(parts) > 1:
        return f"blk.{parts[1]}"
    if parts[-1] in ("weight", "bias") and len(parts) > 1:
        return ".".join(parts[:-1])
    return name
