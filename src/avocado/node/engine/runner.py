"""One loaded model: a llama.cpp context that decodes several sequences together.

Continuous batching, as ``llama-server -np N`` does it: the context has ``parallel`` slots (one
sequence id each, ``num_ctx`` tokens each). Every step builds one batch with the next token of
every generating slot plus as much prompt as still fits, decodes it once, and samples each slot
from its own logits. Jobs join free slots between steps and leave as soon as they finish, so a
new request never waits for another to end. A slot keeps the tokens its KV memory holds, so a
follow-up chat turn only evaluates what is new; a prompt that starts like what another slot holds
(a long system prompt every request of an app begins with) takes a copy of that slot's KV memory
instead of evaluating its start again, and what a slot held before it took a new prompt waits in
the :mod:`~avocado.node.engine.prompt_cache` for the next turn of its conversation.

A runner has no thread of its own: the process's :class:`~avocado.node.engine.compute.ComputeThread`
runs the steps of every runner (llama.cpp contexts are not thread-safe, and one thread keeps one
OpenMP team for the whole process); results go back through each job's callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avocado.node.engine.compute import WAKE, compute_thread
from avocado.node.engine.errors import EngineError, InvalidRequest
from avocado.node.engine.jobs import EmbedJob, GenerateJob
from avocado.node.engine.llama import Batch, ContextParams, LlamaContext, LlamaModel, Placement
from avocado.node.engine.offload import Offload
from avocado.node.engine.prompt_cache import PromptCache, SavedPrompt
from avocado.node.engine.sampling import make_sampler
from avocado.node.engine.slot import Slot, common_prefix

__all__ = ["Runner", "RunnerConfig"]

log = logging.getLogger(__name__)

# Copying another slot's KV memory (through host memory: about 5 ms for 450 tokens of SmolLM2, where
# evaluating one prompt token takes 3-6 ms here) pays when it saves at least this many tokens.
MIN_COPY = 8
# A job that arrives with another whose prompt begins the same way waits for that one to evaluate
# the common part, then copies it, when the part is at least this long. Evaluating a few dozen tokens
# side by side in one batch is cheap; measured on bench/parallel.py: waiting for a 29-token common
# start cost 8% of aggregate throughput at 4 and 8 clients, waiting for a 450-token one gained 80%.
HOLD_AT_LEAST = 64
# A slot's KV memory is saved to the prompt cache before a job overwrites at least this many of
# its tokens (fewer cost less to evaluate again than the scan of the cache they would lengthen).
SAVE_AT_LEAST = 16


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    path: Path
    num_ctx: int  # tokens per slot
    num_batch: int
    num_thread: int
    parallel: int = 1
    use_mmap: bool = True
    prompt_cache: int = 0  # bytes of host memory for prompts that left their slot
    offload: Offload | None = None  # layers on the GPU(s); None: a machine without one, all on the CPU

    @property
    def placement(self) -> Placement:
        plan = self.offload
        if plan is None:
            return Placement()
        return Placement(plan.layers, plan.main_gpu, plan.split_mode, plan.tensor_split, plan.layers == 0)


def _nothing() -> None:
    return None


class Runner:
    """Serves generation and embedding jobs for one model, on the process's compute thread.

    ``flush`` (optional) is called on that thread after every step: jobs whose ``emit`` only
    collects (a :class:`~avocado.node.engine.delivery.Delivery`) are handed their events then,
    once per step.
    """

    def __init__(self, config: RunnerConfig, flush: Callable[[], None] | None = None) -> None:
        self.config = config
        self._flush = flush if flush is not None else _nothing
        started = time.perf_counter()
        self.model = LlamaModel(config.path, use_mmap=config.use_mmap, placement=config.placement)
        per_slot = min(config.num_ctx, self.model.n_ctx_train) if self.model.n_ctx_train else config.num_ctx
        params = ContextParams(
            n_ctx=per_slot * config.parallel,
            n_batch=max(config.num_batch, config.parallel),
            n_threads=config.num_thread,
            n_seq_max=config.parallel,
        )
        try:
            self.ctx = LlamaContext(self.model, params)
        except BaseException:
            self.model.close()
            raise
        self.load_duration = time.perf_counter() - started
        # memory_size: host memory held (the budget --max-memory bounds); vram_size: GPU memory;
        # size: the model as /api/ps reports it (with layers on a GPU: Ollama's estimate, the prompt
        # cache aside). With nothing on a GPU, the figures of a machine without one.
        self.offload = config.offload
        if self.offload is None or self.offload.layers == 0:
            self.memory_size = self.model.size + self.ctx.kv_bytes() + config.prompt_cache
            self.vram_size = 0
            self.size = self.memory_size
        else:
            self.memory_size = self.offload.host + config.prompt_cache
            self.vram_size = self.offload.vram
            self.size = self.offload.total
        self.slots = [Slot(seq_id) for seq_id in range(config.parallel)]
        self.prompt_cache = PromptCache(config.prompt_cache)
        self._embed_ctx: LlamaContext | None = None
        self._batch = Batch(min(params.n_batch, self.ctx.n_batch))
        # Only the compute thread touches what follows, and everything above once it has a job.
        self._pending: deque[GenerateJob | EmbedJob] = deque()  # received, not placed yet
        self._held: list[GenerateJob] = []  # waiting for another slot's prompt
        self.closed = False
        self._released = threading.Event()
        self._compute = compute_thread()

    @property
    def n_ctx(self) -> int:
        """Context length of one slot: the most one request can hold."""
        return self.ctx.n_ctx_seq

    def submit(self, job: GenerateJob | EmbedJob) -> None:
        self._compute.submit(self, job)

    def wake(self) -> None:
        """A paused job was resumed or cancelled: make sure the compute thread takes a step."""
        self._compute.submit(self, WAKE)

    def close(self) -> None:
        """Stop: jobs in hand and queued get an error, then llama.cpp memory is freed."""
        self._compute.submit(self, None)
        self._released.wait()

    # -- on the compute thread ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether a step has something to do."""
        return bool(self._pending or self._held) or self._generating

    @property
    def has_room(self) -> bool:
        """Whether a job received now would find a free slot."""
        return len(self._pending) < len(self._free_slots)

    @property
    def _generating(self) -> bool:
        return any(slot.runnable for slot in self.slots)

    @property
    def busy_slots(self) -> int:
        """Slots serving a request (paused ones included); read from any thread, for reports."""
        return sum(slot.job is not None for slot in self.slots)

    @property
    def paused_slots(self) -> int:
        """Slots whose request waits for its reader to catch up."""
        return sum(slot.job is not None and slot.job.paused for slot in self.slots)

    @property
    def _free_slots(self) -> list[Slot]:
        return [slot for slot in self.slots if not slot.busy]

    def receive(self, job: GenerateJob | EmbedJob) -> None:
        self._pending.append(job)

    def refuse(self, job: GenerateJob | EmbedJob) -> None:
        """A job that came after the runner stopped (closed, or given up on by the compute thread)."""
        job.emit(EngineError("the model was unloaded"))
        self._flush()

    def tick(self) -> None:
        """Take waiting jobs into free slots, run one step, hand its events over."""
        if self._pending or self._held:
            self._admit()
        if self._generating:
            self._step_safely()
        self._flush()

    def _admit(self) -> None:
        """Move jobs into free slots, those held back first."""
        held, self._held = self._held, []
        for waiting in held:
            if not waiting.cancelled.is_set():
                self._place(waiting)
        while self._pending and self._free_slots:
            job = self._pending.popleft()
            if job.cancelled.is_set():
                continue
            if isinstance(job, EmbedJob):
                self._embed_safely(job)
            else:
                self._place(job)

    def _place(self, job: GenerateJob) -> None:
        free = self._free_slots
        if free and not self._should_wait(job):
            try:
                self._start(job, free)
            except Exception as exc:  # this job cannot start; the others go on
                log.exception("starting a generation failed")
                job.emit(exc)
        else:
            self._held.append(job)

    def _should_wait(self, job: GenerateJob) -> bool:
        """Whether another slot is evaluating the start of this job's prompt right now.

        Requests of one app arrive together and begin alike (its system prompt): rather than
        evaluate the same tokens side by side, a job waits until they are in the other slot's KV
        memory and takes a copy (see :meth:`_start`).
        """
        prompt = job.prompt
        prefilling = [(s, s.job) for s in self.slots if s.job is not None and s.prefilling]
        if not prefilling:  # the usual case: no need to look at what else holds this prompt's start
            return False
        # What the job can start from without waiting: a free slot's memory, or a saved prompt.
        own = max((s.common_prefix(prompt) for s in self.slots if not s.busy), default=0)
        own = max(own, self.prompt_cache.find(prompt)[1])
        for other, evaluating in prefilling:
            common = min(common_prefix(evaluating.prompt, prompt), len(prompt) - 1)
            if common >= own + HOLD_AT_LEAST and len(other.cached) < common:
                return True
        return False

    def _start(self, job: GenerateJob, free: list[Slot]) -> None:
        prompt = job.prompt
        if not prompt:
            job.emit(InvalidRequest("empty prompt"))
            return
        if len(prompt) >= self.n_ctx:
            too_long = f"prompt of {len(prompt)} tokens does not fit the context of {self.n_ctx}"
            job.emit(InvalidRequest(too_long))
            return
        try:
            sampler = make_sampler(self.model.vocab, self.model.n_vocab, self.n_ctx, job.params, job.grammar)
        except EngineError as exc:
            job.emit(exc)
            return
        # The free slot that already holds the longest part of this prompt; else the least recently used.
        slot = max(free, key=lambda s: (s.common_prefix(prompt), -s.last_used))
        reuse = min(slot.common_prefix(prompt), len(prompt) - 1)  # the last token makes the logits
        donor, common = self._donor(slot, prompt)
        saved, restorable = self.prompt_cache.find(prompt)
        if len(slot.cached) - reuse >= SAVE_AT_LEAST:
            self._save(slot)
        if saved is not None and restorable > reuse and restorable >= common:
            reuse = self._load(slot, saved.state, saved.tokens, restorable)
        elif donor is not None and common >= reuse + MIN_COPY:
            reuse = self._load(slot, self.ctx.save_sequence(donor.seq_id), donor.cached, common)
        self.ctx.forget(slot.seq_id, reuse)
        slot.start(job, sampler, reuse)

    def _donor(self, slot: Slot, prompt: list[int]) -> tuple[Slot | None, int]:
        """Another slot holding the longest start of ``prompt`` in KV memory, and how much of it."""
        best: Slot | None = None
        longest = 0
        for other in self.slots:
            if other is not slot:
                common = min(other.common_prefix(prompt), len(prompt) - 1)
                if common > longest:
                    best, longest = other, common
        return best, longest

    def _save(self, slot: Slot) -> None:
        """Put a copy of the slot's KV memory in the prompt cache, unless it has it already."""
        if not self.prompt_cache.limit or self.prompt_cache.holds(slot.cached):
            return
        try:
            state = self.ctx.save_sequence(slot.seq_id)
        except EngineError as exc:  # the prompt is evaluated again when it comes back; no more
            log.warning("saving a prompt to the cache failed: %s", exc)
            return
        self.prompt_cache.add(SavedPrompt(list(slot.cached), state))

    def _load(self, slot: Slot, state: np.ndarray, tokens: list[int], reuse: int) -> int:
        """Make the slot hold a saved sequence; how many of its tokens the job can keep (on failure
        the slot holds nothing)."""
        try:
            self.ctx.load_sequence(slot.seq_id, state)
        except EngineError as exc:
            log.warning("%s", exc)
            slot.cached = []
            return 0
        slot.cached = list(tokens)
        return reuse

    def _step_safely(self) -> None:
        try:
            self._step()
        except Exception as exc:  # a failure outside a decode leaves KV memory unknown: start clean
            log.exception("inference failed")
            self.ctx.clear()
            for slot in self.slots:
                if slot.job is not None:
                    job = slot.job
                    slot.finish("error")
                    job.emit(exc)
                slot.cached = []

    def _step(self) -> None:
        """Build one batch from every busy slot, decode it, sample each slot that produced logits."""
        batch = self._batch
        batch.clear()
        for slot in self.slots:
            slot.logits_index = slot.batch_from = -1
            job = slot.job
            if job is None:
                continue
            if job.cancelled.is_set():
                job.emit(slot.finish("cancel"))
            elif job.paused:
                continue
            elif not slot.prefilling:
                if len(slot.cached) >= self.n_ctx and not self._make_room(slot, job):
                    job.emit(slot.finish("length"))
                    continue
                self._add_next(batch, slot)
        for slot in self.slots:  # prompts take what room is left, a chunk at a time
            room = batch.capacity - len(batch)
            if room <= 0:
                break
            if slot.job is not None and slot.prefilling and not slot.job.paused:
                self._add_prompt(batch, slot, room)
        if not len(batch):
            return
        try:
            self.ctx.decode(batch)
        except EngineError as exc:
            self._decode_apart(exc)
            return
        for slot in self.slots:
            self._sample(slot)

    @staticmethod
    def _add_next(batch: Batch, slot: Slot) -> None:
        """The token a generating slot sampled last, to be evaluated (it makes the next logits)."""
        position = slot.batch_from = len(slot.cached)
        batch.add(slot.next_token, position, slot.seq_id, True)
        slot.cached.append(slot.next_token)
        slot.logits_index = len(batch) - 1

    @staticmethod
    def _add_prompt(batch: Batch, slot: Slot, room: int) -> None:
        """The next chunk of a slot's prompt, at most ``room`` tokens; the last one makes logits."""
        assert slot.job is not None
        prompt = slot.job.prompt
        start = slot.batch_from = slot.prompt_pos
        end = min(len(prompt), start + room)
        for pos in range(start, end):
            batch.add(prompt[pos], pos, slot.seq_id, pos == len(prompt) - 1)
        slot.cached.extend(prompt[start:end])
        slot.prompt_pos = end
        if end == len(prompt):
            slot.logits_index = len(batch) - 1

    def _sample(self, slot: Slot) -> None:
        if slot.logits_index < 0 or slot.job is None or slot.sampler is None:
            return
        job = slot.job
        token = slot.sampler.sample(self.ctx, slot.logits_index)
        done = slot.accept(token, self.model)
        if done is not None:
            job.emit(done)

    def _decode_apart(self, error: EngineError) -> None:
        """After a failed decode, try each slot's part of the batch alone: only the jobs whose own
        tokens fail end (with the error); the others go on, and no slot's KV memory is lost.

        llama.cpp leaves KV memory as it was before the part of a batch that failed (it validates a
        batch before touching memory, and takes back a failed part's cells), so each slot in the
        batch first forgets what this batch gave it, then is decoded again on its own.
        """
        log.warning("inference failed (%s): trying each request of the batch on its own", error)
        members = [slot for slot in self.slots if slot.batch_from >= 0]
        for slot in members:
            self.ctx.forget(slot.seq_id, slot.batch_from)
            slot.rewind()
        batch = self._batch
        for slot in members:
            job = slot.job
            if job is None:
                continue
            batch.clear()
            if slot.prefilling:
                self._add_prompt(batch, slot, batch.capacity)
            else:
                self._add_next(batch, slot)
            try:
                self.ctx.decode(batch)
            except EngineError as exc:
                log.warning("inference failed for one request: %s", exc)
                self.ctx.forget(slot.seq_id, slot.batch_from)
                slot.rewind()
                slot.finish("error")
                job.emit(exc)
                continue
            self._sample(slot)

    def _make_room(self, slot: Slot, job: GenerateJob) -> bool:
        """Whether a full slot can go on: its context shifts, unless the job asked to fill it."""
        return not job.fill_context and self._shift_context(slot, job.num_keep)

    def _shift_context(self, slot: Slot, num_keep: int) -> bool:
        """Make room in a full slot as Ollama does: keep ``num_keep`` tokens, drop half of the rest."""
        keep = max(0, min(num_keep, self.n_ctx // 2))
        discard = (len(slot.cached) - keep) // 2
        if discard <= 0 or not self.ctx.can_shift:
            return False
        self.ctx.forget(slot.seq_id, keep, keep + discard)
        self.ctx.shift(slot.seq_id, keep + discard, -discard)
        slot.cached = slot.cached[:keep] + slot.cached[keep + discard :]
        log.debug("context shift: kept %d, dropped %d", keep, discard)
        return True

    def stop(self) -> None:
        """Fail the jobs in hand and waiting; refuse new ones. The weights stay until :meth:`release`:
        a request may still be tokenizing with them."""
        if self.closed:
            return
        self.closed = True
        stopped = EngineError("the model was unloaded")
        for slot in self.slots:
            if slot.job is not None:
                job = slot.job
                slot.finish("cancel")
                job.emit(stopped)
        for waiting in [*self._held, *self._pending]:
            waiting.emit(stopped)
        self._held, self._pending = [], deque()
        self._flush()

    def release(self) -> None:
        """:meth:`stop`, free llama.cpp memory, and let :meth:`close` return."""
        if self._released.is_set():
            return
        try:
            self.stop()
            self.prompt_cache.clear()
            self._batch.free()
            if self._embed_ctx is not None:
                self._embed_ctx.close()
            self.ctx.close()
            self.model.close()
        finally:
            self._released.set()

    # -- embeddings --------------------------------------------------------------------------------

    def _embed_safely(self, job: EmbedJob) -> None:
        try:
            job.emit(self._embed(job))
        except Exception as exc:
            log.warning("embedding failed: %s", exc)
            job.emit(exc)

    def _embed(self, job: EmbedJob) -> list[list[float]]:
        if self._embed_ctx is None:
            n_ctx = self.n_ctx
            params = ContextParams(
                n_ctx=n_ctx, n_batch=n_ctx, n_threads=self.config.num_thread, embeddings=True
            )
            self._embed_ctx = LlamaContext(self.model, params)
        ctx = self._embed_ctx
        batch = Batch(min(ctx.n_ctx, ctx.n_batch))
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
