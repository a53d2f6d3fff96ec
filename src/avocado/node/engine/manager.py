"""Loads models on demand, keeps them for their ``keep_alive``, bounds the queue, unloads them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from avocado.node.engine.delivery import Delivery
from avocado.node.engine.errors import ContextTooLarge, EngineError, InvalidRequest, ModelTooLarge, QueueFull
from avocado.node.engine.gpu import gpu_devices
from avocado.node.engine.jobs import Done, EmbedJob, Event, GenerateJob, Text
from avocado.node.engine.memory import estimate_model_bytes, layer_sizes
from avocado.node.engine.offload import GpuDevice, Offload, plan_offload
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.engine.stream import HIGH, STALL, EventStream
from avocado.node.store.store import Model
from avocado.units import format_size

__all__ = ["GpuAsk", "Loaded", "ManagerConfig", "ModelManager"]

log = logging.getLogger(__name__)


FOREVER = datetime(2318, 1, 1, tzinfo=UTC)  # Ollama shows "forever" (and anything past it) as a far date


@dataclass(slots=True)
class Loaded:
    """A model in memory and the bookkeeping around it."""

    model: Model
    runner: Runner
    delivery: Delivery  # the runner's events to this loop, once per step or per stream interval
    num_ctx: int
    keep_alive: float
    expires_at: float = math.inf  # monotonic seconds
    in_use: int = 0  # requests holding it (queued or running)
    last_used: float = field(default_factory=time.monotonic)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    placement: tuple[int | None, int | None] | None = None  # (num_gpu, main_gpu) it was loaded for

    @property
    def expires_at_wall(self) -> datetime:
        now = datetime.now(UTC)
        remaining = self.expires_at - time.monotonic()
        if remaining >= (FOREVER - now).total_seconds():  # keep_alive 1e200 would overflow a timedelta
            return FOREVER
        return now + timedelta(seconds=remaining)


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    num_thread: int
    num_batch: int
    parallel: int  # slots per model
    max_queue: int  # requests waiting per model beyond the slots
    keep_alive: float  # default, seconds
    max_loaded: int  # models in memory at once
    max_memory: int  # bytes all loaded models may take
    prompt_cache: int = 0  # bytes per model for prompts that left their slot
    stream_interval: float = 0.0  # seconds between hand-overs of generated text (0: every step)
    stall: float = STALL  # seconds a paused generation waits for its reader before it is cancelled
    num_ctx: int = 4096  # the node's default context: one a request asks beyond it is the request's
    backlog: int = HIGH  # events waiting for their reader before the generation pauses
    num_gpu: int | None = None  # layers to offload to the GPU(s); None: as many as fit
    main_gpu: int | None = None  # the GPU a model that fits on one goes to; None: the one with most room
    tensor_split: tuple[float, ...] | None = None  # fixed shares of the layers per GPU; None: by room


@dataclass(frozen=True, slots=True)
class GpuAsk:
    """What a request (its options, the model's parameters) says about the GPU; None: the node's
    setting. Ignored on a machine without a GPU, as before GPUs were supported."""

    num_gpu: int | None = None
    main_gpu: int | None = None


def _unset(event: Event) -> None:
    raise AssertionError("a job's emit is set before the job is submitted")


class ModelManager:
    """Owns every loaded model. All methods run on the event loop."""

    def __init__(self, config: ManagerConfig, devices: Callable[[], list[GpuDevice]] = gpu_devices) -> None:
        self.config = config
        self._list_devices = devices
        self.gpus: list[GpuDevice] = []  # as last seen, free memory included
        self.loaded: dict[str, Loaded] = {}
        self._released = asyncio.Event()  # set whenever a model becomes idle or leaves memory
        self._locks: dict[str, asyncio.Lock] = {}
        self._requests: dict[str, int] = {}  # requests per model name, waiting or running
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap(), name="model-reaper")

    async def refresh_gpus(self) -> list[GpuDevice]:
        """Ask llama.cpp for the GPUs and their free memory now (the first call starts CUDA)."""
        self.gpus = await asyncio.to_thread(self._list_devices)
        return self.gpus

    @property
    def running(self) -> bool:
        """Started and not closed: requests can be served."""
        return self._reaper is not None and not self._reaper.done()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for name in list(self.loaded):
            await self._unload(name)

    @contextlib.asynccontextmanager
    async def use(
        self, model: Model, num_ctx: int, keep_alive: float | None, gpu: GpuAsk | None = None
    ) -> AsyncIterator[Loaded]:
        """Hold ``model`` loaded for the duration of a request; refuse when its queue is full."""
        name = model.name
        # ``parallel`` requests run while the others wait; refuse once max_queue are waiting.
        if self._requests.get(name, 0) >= self.config.parallel + self.config.max_queue:
            raise QueueFull("server busy, please try again.  maximum pending requests exceeded")
        self._requests[name] = self._requests.get(name, 0) + 1
        try:
            loaded = await self._ensure(model, num_ctx, gpu or GpuAsk())
        except BaseException:
            self._requests[name] -= 1
            raise
        loaded.in_use += 1
        loaded.idle.clear()
        loaded.expires_at = math.inf
        try:
            yield loaded
        finally:
            self._requests[name] -= 1
            loaded.in_use -= 1
            loaded.last_used = time.monotonic()
            if keep_alive is not None:
                loaded.keep_alive = keep_alive
            if loaded.in_use == 0:
                loaded.idle.set()
                self._released.set()
                loaded.expires_at = time.monotonic() + loaded.keep_alive
                if loaded.keep_alive <= 0:
                    await self._unload(model.name)

    async def _ensure(self, model: Model, num_ctx: int, gpu: GpuAsk) -> Loaded:
        lock = self._locks.setdefault(model.name, asyncio.Lock())
        async with lock:
            current = self.loaded.get(model.name)
            if current is not None and current.runner.closed:  # the engine gave up on it: load it again
                await current.idle.wait()  # its requests have failed; let them leave its weights
                await self._unload(model.name)
                current = None
            placement = self._placement(gpu)
            same_weights = current is not None and current.model.stored.digest == model.stored.digest
            if (
                current is not None
                and same_weights
                and current.num_ctx == num_ctx
                and current.placement == placement
            ):
                return current
            if current is not None:
                await current.idle.wait()  # let requests on the old settings finish first
                await self._unload(model.name)
            offload = await self._make_room(model, num_ctx, gpu)
            cfg = self.config
            config = RunnerConfig(
                model.model_path,
                num_ctx,
                cfg.num_batch,
                cfg.num_thread,
                cfg.parallel,
                prompt_cache=cfg.prompt_cache,
                offload=offload,
            )
            delivery = Delivery(asyncio.get_running_loop(), cfg.stream_interval)
            runner = await asyncio.to_thread(Runner, config, delivery.flush)
            where = f", {offload.layers}/{offload.layer_count} layers on GPU" if offload else ""
            log.info("loaded %s in %.2fs (ctx %d%s)", model.name, runner.load_duration, runner.n_ctx, where)
            loaded = Loaded(model, runner, delivery, num_ctx, cfg.keep_alive, placement=self._placement(gpu))
            loaded.idle.set()
            self.loaded[model.name] = loaded
            return loaded

    def _placement(self, gpu: GpuAsk) -> tuple[int | None, int | None] | None:
        """What decides where a model's layers go; None on a machine without a GPU (options that
        only matter for GPUs then change nothing, as before)."""
        if not self.gpus:
            return None
        num_gpu = gpu.num_gpu if gpu.num_gpu is not None else self.config.num_gpu
        main_gpu = gpu.main_gpu if gpu.main_gpu is not None else self.config.main_gpu
        return (None if num_gpu is None or num_gpu < 0 else num_gpu), main_gpu

    def _plan(self, model: Model, file_size: int, num_ctx: int, gpu: GpuAsk) -> Offload | None:
        """Where the model's layers go on the GPUs as they are now; None without a GPU."""
        placement = self._placement(gpu)
        if placement is None:
            return None
        num_gpu, main_gpu = placement
        if main_gpu is not None and main_gpu >= len(self.gpus):
            last = len(self.gpus) - 1
            raise InvalidRequest(f"main_gpu {main_gpu} is not a GPU of this node (its GPUs are 0-{last})")
        cfg = self.config
        sizes = layer_sizes(model.info, file_size, num_ctx, cfg.parallel, cfg.num_batch)
        split = cfg.tensor_split
        return plan_offload(
            sizes, self._room(model.name), num_gpu=num_gpu, main_gpu=main_gpu, tensor_split=split
        )

    def _room(self, name: str) -> list[GpuDevice]:
        """The GPUs with what is free for another model. As Ollama counts it: what the GPU reports
        free, but no more than its total less the estimates of the models loaded here (what they
        hold can grow after loading, and a load in flight has not taken its share yet)."""
        estimated: dict[int, int] = {}
        for other, loaded in self.loaded.items():
            plan = loaded.runner.offload
            if other != name and plan is not None:
                for share in plan.devices:
                    estimated[share.index] = estimated.get(share.index, 0) + share.vram
        return [replace(d, free=max(min(d.free, d.total - estimated.get(d.index, 0)), 0)) for d in self.gpus]

    def _host_bytes(self, model: Model, file_size: int, num_ctx: int, plan: Offload | None) -> int:
        """Host memory the model needs: all of it on the CPU, what the GPUs do not hold otherwise."""
        cfg = self.config
        if plan is None or plan.layers == 0:
            return estimate_model_bytes(model.info, file_size, num_ctx, cfg.parallel) + cfg.prompt_cache
        return plan.host + cfg.prompt_cache

    async def _make_room(self, model: Model, num_ctx: int, gpu: GpuAsk) -> Offload | None:
        """Evict idle models, least recently used first, until ``model`` fits the count and memory limits.

        A model larger than the whole budget is refused; if the room is held by busy models,
        wait until one of them goes idle. On a machine with GPUs, idle models that hold GPU memory
        are evicted while the model would not have all the layers it asks for on the GPUs (as
        Ollama does); when busy ones hold it, the model loads split between GPU and CPU.
        """
        cfg = self.config
        file_size = model.model_path.stat().st_size
        await self.refresh_gpus()
        plan = self._plan(model, file_size, num_ctx, gpu)

        def needs(context: int) -> int:
            return self._host_bytes(model, file_size, context, self._plan(model, file_size, context, gpu))

        needed = self._host_bytes(model, file_size, num_ctx, plan)
        if needed > cfg.max_memory:
            message = (
                f"model '{model.name}' needs about {format_size(needed)} of memory ({cfg.parallel} slots "
                f"of {num_ctx} tokens, {format_size(cfg.prompt_cache)} of prompt cache), more than the "
                f"{format_size(cfg.max_memory)} this node may use (--max-memory)"
            )
            if num_ctx > cfg.num_ctx and needs(cfg.num_ctx) <= cfg.max_memory:  # the request's num_ctx
                raise ContextTooLarge(f"num_ctx {num_ctx} is too large: {message}")
            raise ModelTooLarge(message)
        while True:
            others = [loaded for name, loaded in self.loaded.items() if name != model.name]
            used = sum(loaded.runner.memory_size for loaded in others)
            idle = sorted((loaded for loaded in others if loaded.in_use == 0), key=lambda m: m.last_used)
            short = plan is not None and plan.layers < self._wanted_layers(plan, gpu)
            on_gpu = [loaded for loaded in idle if loaded.runner.vram_size > 0] if short else []
            if len(others) < cfg.max_loaded and used + needed <= cfg.max_memory and not on_gpu:
                return plan
            victims = on_gpu or idle
            if victims:
                log.info("evicting %s to make room for %s", victims[0].model.name, model.name)
                await self._unload(victims[0].model.name)
                if plan is not None:  # the GPUs have more room now
                    await self.refresh_gpus()
                    plan = self._plan(model, file_size, num_ctx, gpu)
                    needed = self._host_bytes(model, file_size, num_ctx, plan)
                continue
            self._released.clear()
            await self._released.wait()

    def _wanted_layers(self, plan: Offload, gpu: GpuAsk) -> int:
        placement = self._placement(gpu)
        num_gpu = placement[0] if placement else None
        return plan.layer_count if num_gpu is None else min(num_gpu, plan.layer_count)

    async def unload(self, name: str) -> bool:
        """Unload now if idle, else as soon as the requests in flight finish."""
        loaded = self.loaded.get(name)
        if loaded is None:
            return False
        if loaded.in_use:
            loaded.keep_alive = 0
        else:
            await self._unload(name)
        return True

    async def _unload(self, name: str) -> None:
        loaded = self.loaded.pop(name, None)
        if loaded is not None:
            await asyncio.to_thread(loaded.runner.close)
            log.info("unloaded %s", name)
            self._released.set()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for name, loaded in list(self.loaded.items()):
                if loaded.in_use == 0 and loaded.expires_at <= now:
                    await self._unload(name)

    # -- work --------------------------------------------------------------------------------------

    async def generate(
        self,
        loaded: Loaded,
        prompt: list[int],
        params: SamplingParams,
        *,
        num_predict: int,
        stop: list[str],
        grammar: str | None,
        num_keep: int = 4,
        fill_context: bool = False,
    ) -> AsyncIterator[Text | Done]:
        """Run a generation; stops the engine promptly if the consumer goes away, and pauses it
        while the consumer falls behind (:class:`~avocado.node.engine.stream.EventStream`)."""
        runner = loaded.runner
        job = GenerateJob(
            prompt, params, num_predict, stop, grammar, _unset, num_keep=num_keep, fill_context=fill_context
        )
        backlog = self.config.backlog
        events = EventStream(job, runner.wake, high=backlog, low=backlog // 4, stall=self.config.stall)
        job.emit = loaded.delivery.emitter(events.put)
        runner.submit(job)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event if isinstance(event, EngineError) else EngineError(str(event))
                yield event
                if isinstance(event, Done):
                    return
        finally:
            events.close()
            job.cancelled.set()
            if job.paused:  # the runner skips a paused job: have it see the cancel
                runner.wake()

    async def embed(self, loaded: Loaded, inputs: list[list[int]]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[list[float]] | BaseException] = loop.create_future()

        def settle(result: list[list[float]] | BaseException) -> None:
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(result)

        def deliver(result: list[list[float]] | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop has closed (shutdown)
                loop.call_soon_threadsafe(settle, result)

        job = EmbedJob(inputs, deliver)
        loaded.runner.submit(job)
        try:
            result = await future
        finally:
            job.cancelled.set()
        if isinstance(result, BaseException):
            raise result if isinstance(result, EngineError) else EngineError(str(result))
        return result
