"""A runner's events reach the event loop in order, all of a step at once, when the step ends."""

from __future__ import annotations

import asyncio
import threading

from avocado.node.engine.delivery import Delivery
from avocado.node.engine.jobs import Done, Event, Text


def test_a_step_is_handed_over_when_it_ends_and_in_order() -> None:
    async def scenario() -> tuple[list[int], list[Event], list[Event]]:
        delivery = Delivery(asyncio.get_running_loop())
        first: list[Event] = []
        second: list[Event] = []
        emit_first, emit_second = delivery.emitter(first.append), delivery.emitter(second.append)
        emitted, go_on = threading.Event(), threading.Event()

        def runner_thread() -> None:  # one step of a runner, then the next
            emit_first(Text("a"))
            emit_second(Text("x"))
            emit_first(Text("b"))
            emitted.set()
            go_on.wait(5)
            delivery.flush()
            emit_first(Done("stop", 1, 1, 2, 1, []))
            delivery.flush()

        seen = []
        thread = threading.Thread(target=runner_thread)
        thread.start()
        await asyncio.to_thread(emitted.wait, 5)
        for _ in range(3):
            await asyncio.sleep(0.01)
        seen.append(len(first) + len(second))  # nothing before the step's flush
        go_on.set()
        await asyncio.to_thread(thread.join, 5)
        await asyncio.sleep(0.01)
        seen.append(len(first) + len(second))
        return seen, first, second

    seen, first, second = asyncio.run(scenario())
    assert seen == [0, 4]
    assert first == [Text("a"), Text("b"), Done("stop", 1, 1, 2, 1, [])]
    assert second == [Text("x")]


def test_a_closed_loop_drops_events_quietly() -> None:
    loop = asyncio.new_event_loop()
    delivery = Delivery(loop)
    delivery.emitter(lambda event: None)(Text("late"))
    loop.close()
    delivery.flush()  # no exception: the node is shutting down
