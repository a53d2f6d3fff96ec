"""One sequence in a shared llama.cpp context: its KV tokens, its job, its sampler and its output."""

from __future__ import annotations

import codecs
import math
import time

from avocado.node.engine.jobs import Done, GenerateJob, Text
from avocado.node.engine.llama import LlamaModel
from avocado.node.engine.sampling import Sampler

__all__ = ["Slot", "StopMatcher", "common_prefix"]


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many first tokens ``a`` and ``b`` share.

    Bisects with slice comparisons, which run in C: a placement compares its prompt with every
    slot and every saved prompt, and those often share thousands of tokens (a conversation).
    """
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    same, differs = 0, n  # a[:same] == b[:same] and a[:differs] != b[:differs]
    while differs - same > 1:
        mid = (same + differs) // 2
        if a[same:mid] == b[same:mid]:
            same = mid
        else:
            differs = mid
    return same


class StopMatcher:
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


class Slot:
    """A sequence id in the context, the tokens its KV memory holds, and the job it serves.

    A job goes through two phases: *prefill* (its prompt is evaluated, possibly over several
    batches) and *generate* (one sampled token per batch). ``cached`` always mirrors what the KV
    memory of ``seq_id`` holds once the current batch is decoded.
    """

    def __init__(self, seq_id: int) -> None:
        self.seq_id = seq_id
        self.cached: list[int] = []
        self.job: GenerateJob | None = None
        self.last_used = 0.0
        self.logits_index = -1  # where this slot's logits are in the current batch, or -1
        self.batch_from = -1  # the first position this slot has in the current batch, or -1
        self._reset()

    def _reset(self) -> None:
        self.sampler: Sampler | None = None
        self.prompt_pos = 0  # next prompt token to evaluate
        self.reused = 0
        self.next_token = -1  # sampled but not yet evaluated
        self.generated = 0
        self.limit = math.inf  # tokens the job may generate
        self.started = self.prompt_done = 0
        self.stops = StopMatcher([])
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def runnable(self) -> bool:
        """Whether the next step has something to do for this slot (a paused job waits, unless it
        has been cancelled meanwhile)."""
        job = self.job
        return job is not None and (not job.paused or job.cancelled.is_set())

    @property
    def prefilling(self) -> bool:
        return self.job is not None and self.prompt_pos < len(self.job.prompt)

    def rewind(self) -> None:
        """Forget what the current batch added (its decode failed): ``cached`` and the prompt
        position go back to where the batch began. The caller drops the same from KV memory."""
        start = self.batch_from
        if start < 0:
            return
        del self.cached[start:]
        self.prompt_pos = min(self.prompt_pos, start)  # a generating slot's prompt is all before it
        self.batch_from = self.logits_index = -1

    def common_prefix(self, prompt: list[int]) -> int:
        """How many of ``prompt``'s first tokens this slot's KV memory holds."""
        return common_prefix(self.cached, prompt)

    def start(self, job: GenerateJob, sampler: Sampler, reuse: int) -> None:
        """Take ``job``; the first ``reuse`` prompt tokens are already in KV memory."""
        self._reset()
        self.job = job
        self.sampler = sampler
        self.cached = self.cached[:reuse]
        self.prompt_pos = self.reused = reuse
        self.stops = StopMatcher(job.stop)
        self.limit = math.inf if job.num_predict < 0 else job.num_predict
        self.started = time.perf_counter_ns()

    def accept(self, token: int, model: LlamaModel) -> Done | None:
        """Handle a sampled token: emit its text; return the final event when the job is over."""
        job = self.job
        assert job is not None
        if not self.prompt_done:
            self.prompt_done = time.perf_counter_ns()
        self.generated += 1
        if model.is_eog(token):
            self._emit(self.decoder.decode(b"", final=True) + self.stops.flush())
            return self.finish("stop")
        text, hit = self.stops.feed(self.decoder.decode(model.piece(token)))
        self._emit(text)
        if hit:
            return self.finish("stop", [token])
        if self.generated >= self.limit:  # no need to evaluate a token nobody will continue from
            self._emit(self.decoder.decode(b"", final=True) + self.stops.flush())
            return self.finish("length", [token])
        self.next_token = token
        return None

    def finish(self, reason: str, tail: list[int] | None = None) -> Done:
        """End the job (the caller emits the result) and free the slot; its KV tokens stay for reuse."""
        job = self.job
        assert job is not None
        now = time.perf_counter_ns()
        prompt_done = self.prompt_done or now
        done = Done(
            reason=reason,
            prompt_eval_count=len(job.prompt),
            prompt_eval_duration=prompt_done - self.started,
            eval_count=self.generated,
            eval_duration=now - prompt_done,
            context=self.cached + (tail or []),
            prompt_cached=self.reused,
        )
        if self.sampler is not None:
            self.sampler.close()
        self.job = None
        self._reset()
        self.last_used = time.monotonic()
        return done

    def _emit(self, text: str) -> None:
        if text and self.job is not None:
            self.job.emit(Text(text))
