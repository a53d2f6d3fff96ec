"""The greedy fast path's penalties against llama.cpp's own penalties sampler, value by value."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest

from avocado.node.engine.sampling import GreedySampler, SamplingParams

N_VOCAB = 4096


class Row:
    """A logits row where the sampler looks for it (``ctx.logits``), filled by the test."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def logits(self, index: int) -> np.ndarray:
        return self.values


def penalised_by_llama_cpp(sampler: object, logits: np.ndarray) -> np.ndarray:
    """``logits`` after llama.cpp's penalties sampler (in its own candidate array)."""
    data = (llama_cpp.llama_token_data * len(logits))()
    for token, logit in enumerate(logits.tolist()):
        data[token] = llama_cpp.llama_token_data(token, logit, 0.0)
    candidates = llama_cpp.llama_token_data_array(data, len(logits), -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    out = np.empty(len(logits), dtype=np.float32)
    for i in range(len(logits)):
        out[data[i].id] = data[i].logit
    return out


@pytest.mark.parametrize(
    "penalties",
    [
        {"repeat_penalty": 1.1},  # Ollama's default
        {"repeat_penalty": 1.3, "frequency_penalty": 0.2, "presence_penalty": 0.1},
        {"repeat_penalty": 0.8, "frequency_penalty": -0.3},
    ],
)
def test_penalised_logits_equal_llama_cpp_s_bit_for_bit(penalties: dict[str, float]) -> None:
    params = SamplingParams(temperature=0, repeat_last_n=16, **penalties)
    ours = GreedySampler(512, params)
    theirs = llama_cpp.llama_sampler_init_penalties(
        N_VOCAB, 16, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
    )
    rng = np.random.default_rng(7)
    try:
        for _ in range(40):  # more steps than the window: tokens leave it too
            logits = rng.normal(0, 4, N_VOCAB).astype(np.float32)
            logits[rng.integers(0, 24, 6)] += 9  # a few favourites, so tokens come back
            expected = penalised_by_llama_cpp(theirs, logits)
            row = Row(logits.copy())
            token = ours.sample(row, 0)
            assert row.values.tobytes() == expected.tobytes()
            assert token == int(expected.argmax())
            llama_cpp.llama_sampler_accept(theirs, token)
        assert len(ours.counts) > 1 and sum(ours.counts.values()) == 16
    finally:
        llama_cpp.llama_sampler_free(theirs)
