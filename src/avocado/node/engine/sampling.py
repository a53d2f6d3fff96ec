"""Sampling parameters with Ollama's defaults, turned into a sampler.

Most requests get a llama.cpp sampler chain (sampling and grammar run in C). Greedy requests
without a grammar — the common case for tools, evaluations and benchmarks — take a shorter path:
the chain would build a candidate array over the whole vocabulary every token, while the answer
is an argmax over the logits after penalising the few recent tokens, in place in llama.cpp's own
logits buffer (no copy), with the same float32 arithmetic as the C sampler.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Protocol

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from avocado.node.engine.errors import GrammarError
from avocado.node.engine.llama import LlamaContext

__all__ = [
    "JSON_GBNF",
    "GreedySampler",
    "Sampler",
    "SamplerChain",
    "SamplingParams",
    "json_schema_to_gbnf",
    "make_sampler",
]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Ollama's sampling options and their documented defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SamplingParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


class Sampler(Protocol):
    def sample(self, ctx: LlamaContext, index: int) -> int:
        """Pick the next token from the logits at batch ``index`` and remember it."""
        ...

    def close(self) -> None: ...


def make_sampler(
    vocab: Any, n_vocab: int, n_ctx: int, params: SamplingParams, grammar: str | None
) -> Sampler:
    if params.temperature <= 0.0 and grammar is None:
        return GreedySampler(n_ctx, params)
    return SamplerChain(vocab, n_vocab, n_ctx, params, grammar)


class GreedySampler:
    """Argmax after llama.cpp's repetition penalties, computed the way its penalties sampler does.

    The penalties are written into llama.cpp's logits buffer for the few recent tokens (the next
    decode overwrites it), then one argmax runs over the row. Right after a decode every numpy call
    is cold (about 15 µs each), so the per-token loop is plain Python over a memoryview: the
    penalised values come out in the same float32 arithmetic as the C sampler's.
    """

    def __init__(self, n_ctx: int, params: SamplingParams) -> None:
        window = n_ctx if params.repeat_last_n == -1 else params.repeat_last_n
        self.recent: deque[int] = deque(maxlen=max(window, 0))
        self.counts: dict[int, int] = {}
        # float32 values as doubles: a float32 times a float32 is exact in a double, and a double
        # quotient rounded to float32 is the float32 quotient, so storing the result rounds as C does.
        self.repeat = float(np.float32(params.repeat_penalty))
        self.frequency = np.float32(params.frequency_penalty)
        self.presence = np.float32(params.presence_penalty)
        self.penalise = bool(self.recent.maxlen) and (
            params.repeat_penalty != 1.0 or params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        )
        self.subtract = params.frequency_penalty != 0.0 or params.presence_penalty != 0.0

    def sample(self, ctx: LlamaContext, index: int) -> int:
        logits = ctx.logits(index)  # a view: nothing is copied
        if self.penalise and self.counts:
            self._penalise(logits.data.cast("B").cast("f"))
        token = int(logits.argmax())
        self._remember(token)
        return token

    def _penalise(self, row: memoryview[float]) -> None:
        repeat = self.repeat
        for token, count in self.counts.items():
            value = row[token]
            row[token] = value * repeat if value <= 0 else value / repeat
            if self.subtract:  # rare: float32 scalars, to round each step as C does
                row[token] = float(
                    np.float32(row[token]) - (np.float32(count) * self.frequency + self.presence)
                )

    def _remember(self, token: int) -> None:
        recent, counts = self.recent, self.counts
        if not recent.maxlen:
            return
        if len(recent) == recent.maxlen:
            old = recent[0]
            if counts[old] == 1:
                del counts[old]
            else:
                counts[old] -= 1
        recent.append(token)
        counts[token] = counts.get(token, 0) + 1

    def close(self) -> None:
        pass


class SamplerChain:
    """Owns a llama.cpp sampler chain; sampling and grammar run in C."""

    def __init__(
        self, vocab: Any, n_vocab: int, n_ctx: int, params: SamplingParams, grammar: str | None
    ) -> None:
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self.ptr = llama_cpp.llama_sampler_chain_init(chain_params)
        seed = params.seed if params.seed >= 0 else random.getrandbits(31)
        last_n = n_ctx if params.repeat_last_n == -1 else params.repeat_last_n
        add = self._add
        if grammar is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not sampler:
                self.close()
                raise GrammarError("invalid format: llama.cpp could not use the grammar it became")
            add(sampler)
        if last_n and (
            params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        ):
            add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
                )
            )
        if params.temperature <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        elif params.mirostat == 1:
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            add(
                llama_cpp.llama_sampler_init_mirostat(
                    n_vocab, seed, params.mirostat_tau, params.mirostat_eta, 100
                )
            )
        elif params.mirostat == 2:
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            add(llama_cpp.llama_sampler_init_mirostat_v2(seed, params.mirostat_tau, params.mirostat_eta))
        else:
            if params.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(params.top_k))
            if params.typical_p < 1.0:
                add(llama_cpp.llama_sampler_init_typical(params.typical_p, 1))
            if params.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(params.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.ptr, sampler)

    def sample(self, ctx: LlamaContext, index: int) -> int:
        """Pick the next token from the logits at batch ``index`` and feed it back to the samplers."""
        return int(llama_cpp.llama_sampler_sample(self.ptr, ctx.ptr, index))

    def close(self) -> None:
        if self.ptr:
            llama_cpp.llama_sampler_free(self.ptr)
            self.ptr = None
