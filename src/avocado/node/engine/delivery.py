"""Events from a runner's worker thread to the event loop, handed over once per step.

Every ``call_soon_threadsafe`` wakes the event loop, which then takes the GIL to stream the token
out while the runner is still sampling the step's other sequences in Python: with N streams, N
wake-ups per step, each a chance for the runner to stall behind the loop. Collected during a step
and handed over in one call just before the runner's next ``llama_decode`` (which releases the
GIL), the loop's work runs while llama.cpp computes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from avocado.node.engine.jobs import Emit, Event

__all__ = ["Delivery"]

Sink = Callable[[Event], None]


class Delivery:
    """One runner's outbox: :meth:`emitter` makes a job's ``emit``; the runner calls :meth:`flush`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: list[tuple[Sink, Event]] = []

    def emitter(self, sink: Sink) -> Emit:
        """An ``emit`` for the runner's thread: ``sink`` gets each event on the loop, in order."""

        def emit(event: Event) -> None:
            self._pending.append((sink, event))

        return emit

    def flush(self) -> None:
        """Hand over what the step produced (on the runner's thread; a no-op when nothing is pending)."""
        if not self._pending:
            return
        items, self._pending = self._pending, []
        with contextlib.suppress(RuntimeError):  # the event loop has closed (shutdown): nobody listens
            self.loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[Sink, Event]]) -> None:
    for sink, event in items:
        sink(event)
