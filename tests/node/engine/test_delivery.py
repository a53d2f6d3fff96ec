"""A runner's events reach the event loop in order, all of a step at once, when the step ends.

With an interval, a fast stream's text is held between hand-overs; firsts, ends and errors are not.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

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

        # A hand-over is a call_soon_threadsafe, and the loop runs its callbacks in the order they
        # came: whatever the runner's thread handed over before the loop learns (from that same
        # thread) that it got somewhere has run by the time this task resumes. No sleep needed.
        seen = []
        thread = threading.Thread(target=runner_thread)
        thread.start()
        await asyncio.to_thread(emitted.wait, 5)
        seen.append(len(first) + len(second))  # nothing before the step's flush
        go_on.set()
        await asyncio.to_thread(thread.join, 5)
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


Step = list[tuple[Callable[[Event], None], Event]]


def _handed(delivery: Delivery, received: list[Event], *steps: Step) -> list[int]:
    """Emit each step's events and flush, as a runner does; how many had reached the loop after each."""

    async def scenario() -> list[int]:
        seen: list[int] = []
        for step in steps:
            for emit, event in step:
                emit(event)
            delivery.flush()
            await asyncio.sleep(0)  # a hand-over made now runs before this task resumes
            seen.append(len(received))
        return seen

    return delivery.loop.run_until_complete(scenario())


def test_fast_text_is_held_to_the_interval_but_firsts_and_ends_go_at_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        delivery = Delivery(loop, interval=60.0)  # nothing is ever held this long in a test
        received: list[Event] = []
        one, two = delivery.emitter(received.append), delivery.emitter(received.append)
        end = Done("stop", 1, 1, 3, 1, [])
        seen = _handed(
            delivery,
            received,
            [(one, Text("a"))],  # a stream's first event: at once
            [(one, Text("b"))],  # held
            [(one, Text("c"))],  # held
            [(one, Text("d")), (two, Text("x"))],  # another stream's first event takes all along
            [(one, Text("e"))],  # held
            [(one, end)],  # the end: at once, after what was held
        )
        assert seen == [1, 1, 1, 5, 5, 7]
        assert received == [Text("a"), Text("b"), Text("c"), Text("d"), Text("x"), Text("e"), end]
        error = RuntimeError("decode failed")
        received.clear()
        assert _handed(delivery, received, [(two, Text("y"))], [(two, error)]) == [0, 2]
        assert received == [Text("y"), error]
    finally:
        loop.close()


def test_held_text_goes_out_once_the_interval_has_passed() -> None:
    loop = asyncio.new_event_loop()
    try:
        now = [100.0]  # the delivery's clock, moved by the test
        delivery = Delivery(loop, interval=0.2, clock=lambda: now[0])
        received: list[Event] = []
        emit = delivery.emitter(received.append)
        assert _handed(delivery, received, [(emit, Text("a"))], [(emit, Text("b"))]) == [1, 1]
        now[0] += 0.19
        assert _handed(delivery, received, [(emit, Text("c"))]) == [1]  # not yet
        now[0] += 0.02
        assert _handed(delivery, received, [(emit, Text("d"))]) == [4]
        assert received == [Text("a"), Text("b"), Text("c"), Text("d")]
    finally:
        loop.close()
