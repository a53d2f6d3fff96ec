"""The thin layer over llama.cpp: logits read in place, row by row, as llama.cpp hands them out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from avocado.node.engine.errors import EngineError
from avocado.node.engine.llama import Batch, ContextParams, LlamaContext, LlamaModel
from avocado.node.store.store import ModelStore
from tests.support import SMOLLM


@pytest.fixture(scope="module")
def model(home: Path) -> Iterator[LlamaModel]:
    loaded = LlamaModel(ModelStore(home / "models").resolve(SMOLLM).model_path)
    yield loaded
    loaded.close()


def reference(ctx: LlamaContext, index: int) -> np.ndarray:
    """What llama.cpp's own accessor gives for a batch index (copied, so later decodes can't change it)."""
    pointer = llama_cpp.llama_get_logits_ith(ctx.ptr, index)
    return np.ctypeslib.as_array(pointer, shape=(ctx.model.n_vocab,)).copy()


def test_each_batch_index_reads_its_own_logits(model: LlamaModel) -> None:
    ctx = LlamaContext(model, ContextParams(n_ctx=512, n_batch=64, n_threads=2, n_seq_max=2))
    batch = Batch(64)
    try:
        first = model.tokenize("The capital of France is")
        second = model.tokenize("Two plus two equals")
        wanted = {2, len(first) - 1, len(first) + len(second) - 1}
        for pos, token in enumerate(first):
            batch.add(token, pos, 0, pos in wanted)
        for pos, token in enumerate(second):
            batch.add(token, pos, 1, len(first) + pos in wanted)
        ctx.decode(batch)
        rows = {index: reference(ctx, index) for index in wanted}
        for index in wanted:
            np.testing.assert_array_equal(ctx.logits(index), rows[index])
        assert not np.array_equal(rows[len(first) - 1], rows[len(first) + len(second) - 1])
        with pytest.raises(EngineError, match="no logits"):
            ctx.logits(0)  # not asked for
        with pytest.raises(EngineError, match="no logits"):
            ctx.logits(len(first) + len(second))  # past the batch
    finally:
        batch.free()
        ctx.close()


def test_the_view_follows_the_buffer_when_llama_cpp_grows_it(model: LlamaModel) -> None:
    """One sequence: llama.cpp keeps room for one row, then reallocates for a batch of many."""
    ctx = LlamaContext(model, ContextParams(n_ctx=512, n_batch=64, n_threads=2))
    batch = Batch(64)
    try:
        with pytest.raises(EngineError, match="no logits"):
            ctx.logits(0)  # nothing decoded yet
        tokens = model.tokenize("Once upon a time, in a small village by the sea, there lived")
        batch.add(tokens[0], 0, 0, True)
        ctx.decode(batch)
        np.testing.assert_array_equal(ctx.logits(0), reference(ctx, 0))
        batch.clear()
        for pos, token in enumerate(tokens[1:], start=1):
            batch.add(token, pos, 0, True)  # every token's logits: more rows than there were
        ctx.decode(batch)
        for index in range(len(batch)):
            np.testing.assert_array_equal(ctx.logits(index), reference(ctx, index))
        batch.clear()
        batch.add(tokens[-1], len(tokens), 0, True)
        ctx.decode(batch)
        np.testing.assert_array_equal(ctx.logits(0), reference(ctx, 0))
    finally:
        batch.free()
        ctx.close()
