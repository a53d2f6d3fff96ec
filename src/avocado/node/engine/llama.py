"""A thin, typed layer over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

We drive llama.cpp directly — batches, KV memory, C samplers — instead of the high-level
``llama_cpp.Llama`` class, so sampling happens in C with no per-token copy of the logits and
several sequences can share one context later.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import llama_cpp._logger as llama_logger
import numpy as np

from avocado.node.engine.errors import EngineError, ModelLoadError

__all__ = ["Batch", "LlamaContext", "LlamaModel", "Placement", "backend_init"]

_backend_lock = threading.Lock()
_backend_ready = False

# llama_get_logits declared to return the bare address: the binding's POINTER(c_float) result
# costs a pointer object and a cast after every decode, where only the address is wanted.
_logits_address = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(
    ("llama_get_logits", llama_cpp.llama_cpp._lib)
)


def _bytes(data: np.ndarray) -> ctypes._Pointer[ctypes.c_uint8]:
    return data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))


def backend_init() -> None:
    """Initialise llama.cpp once per process and keep its log quiet (errors only)."""
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama_logger.set_verbose(False)
            llama_cpp.llama_backend_init()
            _backend_ready = True


@dataclass(frozen=True, slots=True)
class Placement:
    """Where llama.cpp puts the weights: ``n_gpu_layers`` (the last layers, output first) on the
    GPUs, all on ``main_gpu`` (split_mode none) or dealt by ``tensor_split`` (split_mode layer)."""

    n_gpu_layers: int = 0
    main_gpu: int = 0
    split_mode: str = "none"  # "none" or "layer"
    tensor_split: tuple[float, ...] = ()
    cpu_only: bool = False  # no GPU at all, not even for large batches (Ollama's num_gpu 0)


_SPLIT_MODES = {"none": llama_cpp.LLAMA_SPLIT_MODE_NONE, "layer": llama_cpp.LLAMA_SPLIT_MODE_LAYER}


class LlamaModel:
    """Loaded weights and vocabulary. Thread-safe for tokenizing; contexts are not."""

    def __init__(self, path: Path, *, use_mmap: bool = True, placement: Placement | None = None) -> None:
        backend_init()
        placement = placement or Placement()
        params = llama_cpp.llama_model_default_params()
        params.use_mmap = use_mmap
        params.n_gpu_layers = placement.n_gpu_layers
        params.main_gpu = placement.main_gpu
        params.split_mode = _SPLIT_MODES[placement.split_mode]
        # llama.cpp reads llama_max_devices() floats from tensor_split; kept alive with the model.
        self._tensor_split = (ctypes.c_float * llama_cpp.llama_max_devices())(*placement.tensor_split)
        if placement.tensor_split:
            params.tensor_split = self._tensor_split
        # An empty device list: with the weights in host memory llama.cpp would still send large
        # batches (prompts) to a GPU; a model that gets no GPU layer gets no GPU work either.
        self._devices = (ctypes.c_void_p * 1)(None)
        if placement.cpu_only:
            params.devices = ctypes.addressof(self._devices)
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {path.name}")
        self.ptr = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        self.n_embd = llama_cpp.llama_model_n_embd(model)
        self.n_layer = llama_cpp.llama_model_n_layer(model)
        self.size = llama_cpp.llama_model_size(model)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._piece_buf = ctypes.create_string_buffer(256)
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_special, parse_special
        )
        if count < 0:
            capacity = -count
            tokens = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_special, parse_special
            )
        if count < 0:
            raise EngineError("tokenization failed")
        return list(tokens[:count])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; control tokens render as nothing."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        size = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, False)
        if size < 0:
            buf = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -size, 0, False)
            value = buf.raw[:size]
        else:
            value = self._piece_buf.raw[:size]
        self._piece_cache[token] = value
        return value

    def token_text(self, token: int) -> str:
        """A token's text with special tokens spelled out (``<|im_end|>``), for templates."""
        buf = ctypes.create_string_buffer(256)
        size = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 256, 0, True)
        return buf.raw[: max(size, 0)].decode("utf-8", errors="replace")

    @property
    def bos(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self.vocab))

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        eog = self._eog_cache.get(token)
        if eog is None:
            eog = self._eog_cache[token] = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
        return eog

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        size = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, 4096)
        return buf.value.decode("utf-8", errors="replace") if size >= 0 else None

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None


@dataclass(frozen=True, slots=True)
class ContextParams:
    n_ctx: int
    n_batch: int
    n_threads: int
    n_seq_max: int = 1
    embeddings: bool = False


class Batch:
    """A reusable ``llama_batch`` that holds up to ``capacity`` tokens.

    It also notes which row of llama.cpp's logits buffer each token's logits land in: the tokens
    asked for logits get consecutive rows, in batch order.
    """

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        self.capacity = capacity
        self.raw = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.raw.n_tokens = 0
        # The arrays, fetched once: every ctypes attribute access builds a new pointer object.
        raw = self.raw
        self._token, self._pos, self._n_seq = raw.token, raw.pos, raw.n_seq_id
        self._seq, self._logits = raw.seq_id, raw.logits
        self._count = 0
        self._rows = [-1] * capacity
        self.outputs = 0  # tokens asked for logits

    def clear(self) -> None:
        self._count = 0
        self.outputs = 0
        self.raw.n_tokens = 0

    def add(self, token: int, pos: int, seq_id: int, logits: bool) -> None:
        i = self._count
        if i >= self.capacity:
            raise EngineError("batch is full")
        self._token[i] = token
        self._pos[i] = pos
        self._n_seq[i] = 1
        self._seq[i][0] = seq_id
        self._logits[i] = logits
        if logits:
            self._rows[i] = self.outputs
            self.outputs += 1
        else:
            self._rows[i] = -1
        self._count = i + 1
        self.raw.n_tokens = self._count

    def output_row(self, index: int) -> int:
        """The logits row of the token at ``index``, or -1 if it was not asked for logits."""
        return self._rows[index] if 0 <= index < self._count else -1

    def __len__(self) -> int:
        return self._count

    def free(self) -> None:
        llama_cpp.llama_batch_free(self.raw)


class LlamaContext:
    """A llama.cpp context (KV memory and compute buffers) over a loaded model."""

    def __init__(self, model: LlamaModel, params: ContextParams) -> None:
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = params.n_ctx
        cparams.n_batch = params.n_batch
        cparams.n_ubatch = params.n_batch
        cparams.n_seq_max = params.n_seq_max
        cparams.n_threads = params.n_threads
        cparams.n_threads_batch = params.n_threads
        cparams.embeddings = params.embeddings
        cparams.no_perf = True
        # Sliding-window layers (Gemma 3) keep every position, not only their window: a slot cut
        # back to a shorter prompt start (prefix reuse, saved prompts) then still has what the next
        # position attends to. (llama.cpp's default; llama-server turns it off and re-evaluates.)
        cparams.swa_full = True
        if params.embeddings:
            cparams.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        ctx = llama_cpp.llama_init_from_model(model.ptr, cparams)
        if not ctx:
            raise ModelLoadError("llama.cpp could not create a context (not enough memory?)")
        self.ptr = ctx
        self.model = model
        self.params = params
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(ctx))  # what one sequence may hold
        # What one decode may take: llama.cpp lowers n_batch to fit a small context, and a larger
        # batch is not an error but a failed assertion that ends the process.
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.memory = llama_cpp.llama_get_memory(ctx)
        self._decoded: Batch | None = None
        self._logits_at = 0  # address of llama.cpp's logits buffer that _logits_rows views
        self._logits_rows = np.empty((0, model.n_vocab), dtype=np.float32)

    def decode(self, batch: Batch) -> None:
        self._decoded = None
        status = llama_cpp.llama_decode(self.ptr, batch.raw)
        if status == 1:
            raise EngineError("the context is full")
        if status != 0:
            raise EngineError(f"llama_decode failed with status {status}")
        if batch.outputs and not self.params.embeddings:
            self._view_logits(batch.outputs)
            self._decoded = batch

    def _view_logits(self, outputs: int) -> None:
        """Keep a numpy view of llama.cpp's logits buffer; renewed only when the buffer moves.

        Building a view costs more than the argmax over it (every Python and numpy path is cold
        after a decode has streamed the weights through the caches), so one view serves every
        step until llama.cpp reallocates the buffer for more outputs than it had room for.
        """
        # llama_get_logits also puts the rows back in batch order if llama.cpp split the batch.
        at = _logits_address(self.ptr) or 0
        if not at:
            self._logits_rows, self._logits_at = self._logits_rows[:0], 0
        elif at != self._logits_at or outputs > len(self._logits_rows):
            rows = max(outputs, self.params.n_seq_max)  # llama.cpp keeps room for at least n_seq_max
            buffer = (ctypes.c_float * (rows * self.model.n_vocab)).from_address(at)
            self._logits_rows = np.frombuffer(buffer, dtype=np.float32).reshape(rows, self.model.n_vocab)
            self._logits_at = at

    def logits(self, index: int) -> np.ndarray:
        """The logits of the token at batch ``index`` in the last decode.

        A view of llama.cpp's buffer, not a copy: valid until the next decode, which overwrites it.
        """
        row = self._decoded.output_row(index) if self._decoded is not None else -1
        if not 0 <= row < len(self._logits_rows):
            raise EngineError(f"no logits for batch index {index}")
        view: np.ndarray = self._logits_rows[row]
        return view

    def forget(self, seq_id: int, start: int, end: int = -1) -> None:
        """Drop positions ``[start, end)`` of a sequence from KV memory (``end=-1``: to the end)."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq_id, start, end)

    @property
    def can_shift(self) -> bool:
        return bool(llama_cpp.llama_memory_can_shift(self.memory))

    def shift(self, seq_id: int, start: int, delta: int) -> None:
        """Move the positions of a sequence from ``start`` to its end by ``delta``."""
        llama_cpp.llama_memory_seq_add(self.memory, seq_id, start, -1, delta)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)

    def save_sequence(self, seq_id: int) -> np.ndarray:
        """A copy of what a sequence holds in KV memory, in host memory."""
        size = llama_cpp.llama_state_seq_get_size(self.ptr, seq_id)
        data = np.empty(size, dtype=np.uint8)
        written = llama_cpp.llama_state_seq_get_data(self.ptr, _bytes(data), size, seq_id)
        if written != size:
            raise EngineError(f"saving a sequence wrote {written} of {size} bytes")
        return data

    def load_sequence(self, seq_id: int, data: np.ndarray) -> None:
        """Make a sequence hold what :meth:`save_sequence` copied (from this or another sequence)."""
        if llama_cpp.llama_state_seq_set_data(self.ptr, _bytes(data), data.nbytes, seq_id) != data.nbytes:
            self.forget(seq_id, 0)
            raise EngineError("loading a saved sequence into KV memory failed")

    def embedding(self, seq_id: int) -> list[float]:
        ptr = llama_cpp.llama_get_embeddings_seq(self.ptr, seq_id)
        if not ptr:
            raise EngineError("the model returned no embedding")
        return list(ptr[: self.model.n_embd])

    def kv_bytes(self) -> int:
        """Size of the KV buffers: a key and a value vector (f16) per KV head, layer and cell."""
        model = self.model.ptr
        heads = max(int(llama_cpp.llama_model_n_head(model)), 1)
        head_size = int(llama_cpp.llama_model_n_embd(model)) // heads
        kv_heads = int(llama_cpp.llama_model_n_head_kv(model))
        return int(self.model.n_layer) * self.n_ctx * kv_heads * head_size * 2 * 2

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_free(self.ptr)
            self.ptr = None
