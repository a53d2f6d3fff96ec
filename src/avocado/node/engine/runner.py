"""One loaded model: a llama.cpp context driven by a worker thread that serves queued jobs.

The worker owns the context (llama.cpp contexts are not thread-safe). Jobs reach it through a
queue; results go back to the asyncio side through a callback. The slot keeps the tokens that are
in its KV memory, so a follow-up chat turn only evaluates what is new.
"""

from __future__ import annotations

import codecs
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avocado.node.engine.errors import EngineError
from avocado.node.engine.llama import Batch, ContextParams, LlamaContext, LlamaModel
from avocado.node.engine.sampling import SamplerChain, SamplingParams

__all__ = ["Done", "EmbedJob", "GenerateJob", "Runner", "RunnerConfig", "Text"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    path: Path
    num_ctx: int
    num_batch: int
    num_thread: int
    use_mmap: bool = True


@dataclass(slots=True)
class Text:
    """A piece of generated text."""

    text: str


@dataclass(slots=True)
class Done:
    """The end of a generation, with Ollama's counters (durations in nanoseconds)."""

    reason: str  # "stop" or "length"
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    context: list[int]
    prompt_cached: int = 0  # prompt tokens found in KV memory already (not evaluated again)


Event = Text | Done | BaseException
Emit = Callable[[Event], None]


@dataclass(slots=True)
class GenerateJob:
    prompt: list[int]
    params: SamplingParams
    num_predict: int
    stop: list[str]
    grammar: str | None
    emit: Emit
    cancelled: threading.Event = field(default_factory=threading.Event)
    num_keep: int = 4  # tokens kept at the start when a full context shifts


@dataclass(slots=True)
class EmbedJob:
    inputs: list[list[int]]
    emit: Callable[[list[list[float]] | BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


class _StopMatcher:
    """Holds back text that may be the start of a stop sequence."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop sequence was hit)."""
        self.pending += text
        if not self.stops:
            out, self.pending = self.pending, ""
            return out, False
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self.pending[: min(hits)]
            self.pending = ""
            return out, True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self.pending) - hold
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class Runner:
    """Serves generation and embedding jobs for one model on one worker thread."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        started = time.perf_counter()
        self.model = LlamaModel(config.path, use_mmap=config.use_mmap)
        n_ctx = min(config.num_ctx, self.model.n_ctx_train) if self.model.n_ctx_train else config.num_ctx
        params = ContextParams(n_ctx=n_ctx, n_batch=min(config.num_batch, n_ctx), n_threads=config.num_thread)
        try:
            self.ctx = LlamaContext(self.model, params)
        except BaseException:
            self.model.close()
            raise
        self.load_duration = time.perf_counter() - started
        self.memory_size = self.model.size + self.ctx.kv_bytes()
        self._embed_ctx: LlamaContext | None = None
        self._batch = Batch(params.n_batch)
        self._cached: list[int] = []  # tokens currently in KV memory for sequence 0
        self._jobs: queue.Queue[GenerateJob | EmbedJob | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._work, name=f"runner-{config.path.name[:20]}", daemon=True
        )
        self._thread.start()

    @property
    def n_ctx(self) -> int:
        return self.ctx.n_ctx

    def submit(self, job: GenerateJob | EmbedJob) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Finish the job in hand, drop queued ones, then free llama.cpp memory."""
        self._jobs.put(None)
        self._thread.join()

    # -- worker ------------------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                if job.cancelled.is_set():
                    continue
                try:
                    if isinstance(job, GenerateJob):
                        self._generate(job)
                    else:
                        job.emit(self._embed(job))
                except Exception as exc:  # report to the waiting request, keep serving
                    if isinstance(exc, EngineError):
                        log.warning("inference failed: %s", exc)
                    else:
                        log.exception("inference failed")
                    self._cached = []
                    self.ctx.clear()
                    job.emit(exc)
        finally:
            self._release()

    def _release(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.emit(EngineError("the model was unloaded"))
        self._batch.free()
        if self._embed_ctx is not None:
            self._embed_ctx.close()
        self.ctx.close()
        self.model.close()

    def _eval_prompt(self, prompt: list[int]) -> int:
        """Bring KV memory to ``prompt``, reusing the longest common prefix; returns tokens evaluated."""
        common = 0
        for a, b in zip(self._cached, prompt, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt) - 1)  # the last token must be evaluated to get logits
        self.ctx.forget(0, common)
        self._cached = self._cached[:common]
        batch, size = self._batch, self._batch.capacity
        for start in range(common, len(prompt), size):
            chunk = prompt[start : start + size]
            batch.clear()
            for offset, token in enumerate(chunk):
                pos = start + offset
                batch.add(token, pos, 0, pos == len(prompt) - 1)
            self.ctx.decode(batch)
            self._cached.extend(chunk)
        return len(prompt) - common

    def _generate(self, job: GenerateJob) -> None:
        if not job.prompt:
            raise EngineError("empty prompt")
        if len(job.prompt) >= self.n_ctx:
            raise EngineError(f"prompt of {len(job.prompt)} tokens does not fit the context of {self.n_ctx}")
        started = time.perf_counter_ns()
        evaluated = self._eval_prompt(job.prompt)
        sampler = SamplerChain(self.model.vocab, self.model.n_vocab, self.n_ctx, job.params, job.grammar)
        try:
            prompt_done = time.perf_counter_ns()
            reason, generated, tail = self._decode_loop(job, sampler)
        finally:
            sampler.close()
        finished = time.perf_counter_ns()
        job.emit(
            Done(
                reason=reason,
                prompt_eval_count=len(job.prompt),
                prompt_eval_duration=prompt_done - started,
                eval_count=generated,
                eval_duration=finished - prompt_done,
                context=self._cached + tail,
                prompt_cached=len(job.prompt) - evaluated,
            )
        )

    def _decode_loop(self, job: GenerateJob, sampler: SamplerChain) -> tuple[str, int, list[int]]:
        """Sample until a stop; returns (reason, tokens generated, last token not yet in KV memory)."""
        model, ctx, batch = self.model, self.ctx, self._batch
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher(job.stop)
        limit = math.inf if job.num_predict < 0 else job.num_predict
        generated = 0
        index = -1  # logits of the last token in the previous batch
        while generated < limit:
            if job.cancelled.is_set():
                return "cancel", generated, []
            if len(self._cached) >= self.n_ctx and not self._shift_context(job.num_keep):
                return "length", generated, []
            token = sampler.sample(ctx.ptr, index)
            generated += 1
            if model.is_eog(token):
                self._emit_text(job, decoder.decode(b"", final=True) + stops.flush())
                return "stop", generated, []
            text, hit = stops.feed(decoder.decode(model.piece(token)))
            self._emit_text(job, text)
            if hit:
                return "stop", generated, [token]
            if generated >= limit:  # no need to evaluate a token nobody will continue from
                self._emit_text(job, decoder.decode(b"", final=True) + stops.flush())
                return "length", generated, [token]
            batch.clear()
            batch.add(token, len(self._cached), 0, True)
            ctx.decode(batch)
            self._cached.append(token)
        return "length", generated, []

    def _shift_context(self, num_keep: int) -> bool:
        """Make room in a full context as Ollama does: keep ``num_keep`` tokens, drop half of the rest."""
        keep = max(0, min(num_keep, self.n_ctx // 2))
        discard = (len(self._cached) - keep) // 2
        if discard <= 0 or not self.ctx.can_shift:
            return False
        self.ctx.forget(0, keep, keep + discard)
        self.ctx.shift(0, keep + discard, -discard)
        self._cached = self._cached[:keep] + self._cached[keep + discard :]
        log.debug("context shift: kept %d, dropped %d", keep, discard)
        return True

    @staticmethod
    def _emit_text(job: GenerateJob, text: str) -> None:
        if text:
            job.emit(Text(text))

    def _embed(self, job: EmbedJob) -> list[list[float]]:
        if self._embed_ctx is None:
            n_ctx = self.n_ctx
            params = ContextParams(
                n_ctx=n_ctx, n_batch=n_ctx, n_threads=self.config.num_thread, embeddings=True
            )
            self._embed_ctx = LlamaContext(self.model, params)
        ctx = self._embed_ctx
        batch = Batch(ctx.n_ctx)
        vectors = []
        try:
            for tokens in job.inputs:
                if job.cancelled.is_set():
                    break
                ctx.clear()
                batch.clear()
                for pos, token in enumerate(tokens):
                    batch.add(token, pos, 0, True)
                ctx.decode(batch)
                vectors.append(ctx.embedding(0))
        finally:
            batch.free()
        return vectors
