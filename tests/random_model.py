"""Write a llama-architecture GGUF with random weights, for GPU tests and benchmarks.

    .venv/bin/python bench/make_model.py OUT.gguf [--preset 1b|tiny] [--type q4_0|f16|f32] [--seed N]

(The GPU tests call :func:`write_model` directly.)

The lent GPU machine has no network and takes at most 64 MiB with the working tree, so the models
it runs are made there. Random weights decode as fast as trained ones of the same shape, which is
all a speed benchmark needs; the ``1b`` preset is shaped like a 1B Llama (2048 wide, 16 blocks,
GQA 32/8 heads, 8192 FFN, 32000 tokens: 1.1B parameters).

The weights are not only noise: the output matrix holds the token embeddings, rows permuted, so
each token's own direction in the residual stream points at a fixed next token, and the blocks
(of moderate scale) bend that choice by what attention and the FFN add. Greedy decoding then has
clear winners with real work behind them: a GPU and the CPU agree on it unless one computes
wrongly. The end-of-sequence token never wins (its output row is zero), so a generation runs for
as many tokens as asked. A SentencePiece vocabulary (bytes, letters, short pieces) makes any text
tokenizable.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

__all__ = ["FILE_TYPES", "PRESETS", "Shape", "write_model"]


@dataclass(frozen=True, slots=True)
class Shape:
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    n_ctx: int

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


PRESETS = {
    "1b": Shape(n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192, n_vocab=32000, n_ctx=8192),
    "tiny": Shape(n_embd=256, n_layer=4, n_head=4, n_head_kv=2, n_ff=768, n_vocab=2048, n_ctx=4096),
}
SPECIALS = 3  # <unk>, <s>, </s>
BLOCK_SCALE = 0.5  # what each attention and FFN output adds to the residual stream, relative to it
_QK = 32  # values per Q4_0 block
FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}


class Weights:
    """Random matrices of one type: floats, or Q4_0 blocks with random nibbles and one scale."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind = kind
        self.rng = rng

    def matrix(self, rows: int, cols: int, std: float) -> np.ndarray:
        if self.kind == "q4_0":
            return self._q4_0(rows, cols, std)
        values = self.rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)
        return values.astype(np.float16) if self.kind == "f16" else values

    def _q4_0(self, rows: int, cols: int, std: float) -> np.ndarray:
        """Q4_0 rows: per block of 32 values an f16 scale and 16 bytes of nibbles. Nibbles 1-15
        (values -7..7, mean 0, deviation 4.32) times the scale give the deviation asked for."""
        blocks = rows * cols // _QK
        nibbles = self.rng.integers(1, 16, size=(blocks, _QK), dtype=np.uint8)
        packed = nibbles[:, :16] | (nibbles[:, 16:] << 4)
        scale = np.full((blocks, 1), std / 4.32, dtype=np.float16).view(np.uint8)
        return np.concatenate([scale, packed], axis=1).reshape(rows, cols // _QK * 18)

    def add(self, writer: gguf.GGUFWriter, name: str, data: np.ndarray, cols: int) -> None:
        if self.kind == "q4_0":  # the writer reads the values per row off the bytes per row
            assert data.shape[1] == cols // _QK * 18
            writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        else:
            writer.add_tensor(name, data)


def _vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """SentencePiece pieces: the specials, the 256 byte tokens, then letters and short pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    kinds = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    kinds += [gguf.TokenType.BYTE] * 256
    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,!?;:'-"
    pieces = itertools.chain(
        ("\u2581" + c for c in chars),
        iter(chars),
        ("\u2581" + a + b for a, b in itertools.product(string.ascii_lowercase, repeat=2)),
        (a + b for a, b in itertools.product(string.ascii_lowercase, repeat=2)),
        ("\u2581" + a + b + c for a, b, c in itertools.product(string.ascii_lowercase, repeat=3)),
        (a + b + c for a, b, c in itertools.product(string.ascii_lowercase, repeat=3)),
    )
    for piece in itertools.islice(pieces, size - len(tokens)):  # up to 36,903 tokens
        tokens.append(piece)
        kinds.append(gguf.TokenType.NORMAL)
    scores = [0.0] * 259 + [-float(i) for i in range(len(tokens) - 259)]  # shorter pieces merge first
    return tokens, scores, [int(kind) for kind in kinds]


def write_model(path: Path, shape: Shape, kind: str = "q4_0", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    weights = Weights(kind, rng)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"random-llama-{shape.n_layer}x{shape.n_embd}")
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(shape.n_vocab)
    writer.add_file_type(FILE_TYPES[kind])
    tokens, scores, kinds = _vocabulary(shape.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(kinds)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    _add_tensors(writer, weights, shape, rng)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_tensors(writer: gguf.GGUFWriter, weights: Weights, shape: Shape, rng: np.random.Generator) -> None:
    d, kv = shape.n_embd, shape.n_head_kv * shape.head_dim
    ones = np.ones(d, dtype=np.float32)
    embeddings = weights.matrix(shape.n_vocab, d, 1.0)
    weights.add(writer, "token_embd.weight", embeddings, d)
    for i in range(shape.n_layer):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", ones)
        writer.add_tensor(f"{block}.ffn_norm.weight", ones)
        for name, rows, cols, std in (
            ("attn_q", d, d, d**-0.5),
            ("attn_k", kv, d, d**-0.5),
            ("attn_v", kv, d, d**-0.5),
            ("attn_output", d, d, BLOCK_SCALE * d**-0.5),
            ("ffn_gate", shape.n_ff, d, d**-0.5),
            ("ffn_up", shape.n_ff, d, d**-0.5),
            ("ffn_down", d, shape.n_ff, 2 * BLOCK_SCALE * shape.n_ff**-0.5),
        ):
            weights.add(writer, f"{block}.{name}.weight", weights.matrix(rows, cols, std), cols)
    writer.add_tensor("output_norm.weight", ones)
    # Row next[t] of the output matrix is token t's embedding: t's direction points at next[t].
    # The special tokens' rows stay zero (a zero logit never beats the best of thousands of others).
    order = SPECIALS + rng.permutation(shape.n_vocab - SPECIALS)
    output = np.zeros_like(embeddings)
    output[order] = embeddings[SPECIALS:]
    weights.add(writer, "output.weight", output, d)
