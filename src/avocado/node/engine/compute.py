"""The one thread that runs every loaded model's steps.

llama.cpp computes on an OpenMP team that belongs to the thread calling ``llama_decode``. A thread
per model meant a team per model, and libgomp, once it manages more threads than there are CPUs,
cuts the spinning at its barriers to almost nothing: every one of the hundreds of barriers in a
decode then sleeps in the kernel. Measured on 2 cores: loading a second model, even one left idle,
slowed the first from 122 to 81 tokens/s. With one compute thread there is one team; models that
are busy at the same time take turns step by step, which is also all two cores can give them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

from avocado.node.engine.jobs import EmbedJob, GenerateJob

if TYPE_CHECKING:
    from avocado.node.engine.runner import Runner

__all__ = ["GATHER_GAP", "WAKE", "ComputeThread", "Wake", "compute_thread"]

log = logging.getLogger(__name__)

# Requests sent together reach the engine one by one, as the event loop parses each: woken from
# idle, the thread waits up to this long after each arrival for the next, so their prompts start
# in one batch rather than the first alone and the rest a step (a whole prefill) later.
GATHER_GAP = 0.002


class Wake:
    """An item that only wakes the thread: a paused job of the runner can go on, or was cancelled."""


WAKE = Wake()

Item = GenerateJob | EmbedJob | Wake | None  # None: the runner is closing


class ComputeThread:
    """Takes work for any number of runners and runs their steps in turn on one thread."""

    def __init__(self) -> None:
        # A deque and an event rather than a queue.Queue: between steps, "anything new?" is one
        # truth test, not a lock and a raised queue.Empty.
        self._inbox: deque[tuple[Runner, Item]] = deque()
        self._wake = threading.Event()
        self._runners: list[Runner] = []  # touched only by the thread
        self._thread = threading.Thread(target=self._work, name="llama-compute", daemon=True)
        self._thread.start()

    def submit(self, runner: Runner, item: Item) -> None:
        self._inbox.append((runner, item))
        self._wake.set()

    def _work(self) -> None:
        while True:
            self._receive(block=not any(runner.active for runner in self._runners))
            for runner in self._runners:
                try:
                    runner.tick()
                except Exception:  # one model's failure must not stop every other model
                    log.exception("a model failed outside a step; its jobs are failed")
                    self._drop(runner, free=False)  # its owner closes it, when no request uses it

    def _drop(self, runner: Runner, *, free: bool) -> None:
        """Take a runner off the thread: its jobs failed, its memory freed if ``free``."""
        self._runners = [other for other in self._runners if other is not runner]
        try:
            if free:
                runner.release()
            else:
                runner.stop()
        except Exception:  # must not take the thread (and every other model) with it
            log.exception("stopping a model failed")

    def _receive(self, *, block: bool) -> None:
        """Hand what arrived to its runner; wait for work when no runner has any.

        Woken from idle, keep taking arrivals until none comes for ``GATHER_GAP`` or the runner
        that got the last one has no free slot left for another.
        """
        if block:
            self._wait(None)
        while self._inbox:
            runner, item = self._inbox.popleft()
            self._route(runner, item)
            if block and not self._inbox and runner.has_room and not isinstance(item, Wake):
                self._wait(GATHER_GAP)

    def _wait(self, timeout: float | None) -> None:
        """Until something is in the inbox, or ``timeout`` seconds have passed."""
        while not self._inbox:
            self._wake.clear()
            if self._inbox:  # it came between the test and the clear
                return
            if not self._wake.wait(timeout) and timeout is not None:
                return

    def _route(self, runner: Runner, item: Item) -> None:
        if item is None:
            self._drop(runner, free=True)
        elif isinstance(item, Wake):
            return  # the runner is on the list already: it has a job
        elif runner.closed:
            runner.refuse(item)
        else:
            if runner not in self._runners:
                self._runners.append(runner)
            runner.receive(item)


_lock = threading.Lock()
_thread: ComputeThread | None = None


def compute_thread() -> ComputeThread:
    """The process's compute thread, started on first use."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = ComputeThread()
        return _thread
