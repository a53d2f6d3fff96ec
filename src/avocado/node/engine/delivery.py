"""Events from a runner's worker thread to the event loop, handed over once per step or less often.

Every ``call_soon_threadsafe`` wakes the event loop, which then takes the GIL to stream the token
out while the runner is still sampling the step's other sequences in Python: with N streams, N
wake-ups per step, each a chance for the runner to stall behind the loop. Collected during a step
and handed over in one call just before the runner's next ``llama_decode`` (which releases the
GIL), the loop's work runs while llama.cpp computes instead.

A wake-up costs the loop about as much CPU as the chunk it then sends, and on a small CPU every
cycle the loop takes is one a decode waits for. So when steps come faster than ``interval``,
generated text is held and handed over at most once per ``interval``: a fast stream sends a few
chunks per wake-up, still one per token, and nobody reads faster than that. A stream's first event
and every end or error go at once, so neither time to first token nor a stream's end waits.
(Measured with one 120 tokens/s stream on 2 cores: the loop's CPU per token fell from 275 to
156 µs with 20 ms, and tokens/s rose 3.6%.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from avocado.node.engine.jobs import Emit, Event, Text

__all__ = ["Delivery"]

Sink = Callable[[Event], None]


class Delivery:
    """One runner's outbox: :meth:`emitter` makes a job's ``emit``; the runner calls :meth:`flush`.

    ``interval`` (seconds, 0 for every step) is the shortest time between two hand-overs that
    carry generated text only, as ``clock`` counts it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.loop = loop
        self.interval = interval
        self._clock = clock
        self._pending: list[tuple[Sink, Event]] = []
        self._urgent = False  # a first event, an end or an error is pending
        self._handed = 0.0  # the clock's time of the last hand-over

    def emitter(self, sink: Sink) -> Emit:
        """An ``emit`` for the runner's thread: ``sink`` gets each event on the loop, in order."""
        started = False

        def emit(event: Event) -> None:
            nonlocal started
            if not started or type(event) is not Text:
                self._urgent = True
                started = True
            self._pending.append((sink, event))

        return emit

    def flush(self) -> None:
        """Hand over what the steps produced, unless it is only text and the last hand-over is recent.

        Called on the runner's thread after every step; a no-op when nothing is pending.
        """
        if not self._pending:
            return
        now = self._clock()
        if not self._urgent and now - self._handed < self.interval:
            return
        items, self._pending = self._pending, []
        self._urgent = False
        self._handed = now
        with contextlib.suppress(RuntimeError):  # the event loop has closed (shutdown): nobody listens
            self.loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[Sink, Event]]) -> None:
    for sink, event in items:
        sink(event)
