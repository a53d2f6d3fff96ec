"""A generation's events on the event loop, with a bound: a reader that falls behind pauses its job.

The runner cannot wait for a reader (one compute thread serves every request), so a stream that is
not read as fast as tokens come would grow without end: a client that stops reading, with a large
``num_predict``, would take the node's memory. Once ``high`` events wait, the job is *paused*: the
runner leaves its slot out of its batches (its KV memory stays) until the reader has taken all but
``low`` of them. A reader that does not take anything for ``stall`` seconds while its job is paused
has gone: the job is cancelled and its slot freed. (The transport applies the same backpressure to
the response: uvicorn stops the sender once 64 KiB wait to be written.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from avocado.node.engine.jobs import Event, GenerateJob, Text

__all__ = ["HIGH", "LOW", "STALL", "EventStream"]

log = logging.getLogger(__name__)

HIGH = 128  # events waiting for their reader before the job pauses
LOW = 32  # events still waiting when the job goes on
STALL = 60.0  # seconds a paused job waits for its reader to take anything


class EventStream:
    """The events of ``job``, handed over by :meth:`put` (the runner's delivery, on the loop) and
    taken by :meth:`get`. ``wake`` makes the runner look at the job again after a pause."""

    __slots__ = ("_events", "_job", "_loop", "_stall", "_stalled", "_waiter", "_wake", "high", "low")

    def __init__(
        self,
        job: GenerateJob,
        wake: Callable[[], None],
        *,
        high: int = HIGH,
        low: int = LOW,
        stall: float = STALL,
    ) -> None:
        self._job = job
        self._wake = wake
        self.high, self.low = high, low
        self._stall = stall
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._stalled: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: Event) -> None:
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif len(self._events) >= self.high and not self._job.paused and type(event) is Text:
            self._job.paused = True
            self._stalled = self._loop.call_later(self._stall, self._give_up)

    async def get(self) -> Event:
        while not self._events:
            self._waiter = self._loop.create_future()
            await self._waiter
        event = self._events.popleft()
        if self._job.paused and len(self._events) <= self.low:
            self._resume()
        return event

    def close(self) -> None:
        """The reader is done: no timer outlives the stream."""
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _resume(self) -> None:
        self.close()
        self._job.paused = False
        self._wake()

    def _give_up(self) -> None:
        self._stalled = None
        if self._job.paused and not self._job.cancelled.is_set():
            log.info("a reader took nothing for %gs: its generation is cancelled", self._stall)
            self._job.cancelled.set()
            self._wake()
