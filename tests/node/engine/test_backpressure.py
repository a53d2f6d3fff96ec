"""A generation whose reader falls behind pauses, keeps its place, and goes on when the reader
catches up; one whose reader stops for good is cancelled and frees its slot.

The events of a stream once queued without a bound: a client that stopped reading kept its
generation running and the node's memory growing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from avocado.node.engine import Done, Loaded, ManagerConfig, ModelManager, SamplingParams, Text
from avocado.node.store.store import ModelStore
from tests.node.engine.support import CHATML
from tests.support import SMOLLM

T = TypeVar("T")
BACKLOG = 16  # events a reader may leave waiting (the node's default is larger: slower to reach)


def manager_config(stall: float) -> ManagerConfig:
    return ManagerConfig(
        num_thread=2,
        num_batch=256,
        parallel=2,
        max_queue=8,
        keep_alive=0,
        max_loaded=1,
        max_memory=4 << 30,
        stall=stall,
        backlog=BACKLOG,
    )


def with_model(home: Path, stall: float, scenario: Callable[[ModelManager, Loaded], Awaitable[T]]) -> T:
    model = ModelStore(home / "models").resolve(SMOLLM)

    async def main() -> T:
        manager = ModelManager(manager_config(stall))
        manager.start()
        try:
            async with manager.use(model, 512, None) as loaded:
                return await scenario(manager, loaded)
        finally:
            await manager.close()

    return asyncio.run(main())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll the runner's state (read across threads) until ``condition`` holds; fail after 60 s."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within 60s"
        await asyncio.sleep(0.01)


def generated(loaded: Loaded) -> int:
    return sum(slot.generated for slot in loaded.runner.slots if slot.job is not None)


def test_a_reader_that_falls_behind_pauses_its_generation_without_losing_a_token(home: Path) -> None:
    count = BACKLOG * 4

    async def scenario(manager: ModelManager, loaded: Loaded) -> tuple[str, str, int, int]:
        prompt = loaded.runner.model.tokenize(CHATML.format("Write a long story about a lighthouse."))

        def run() -> AsyncIterator[Text | Done]:
            greedy = SamplingParams(temperature=0)
            return manager.generate(loaded, prompt, greedy, num_predict=count, stop=[], grammar=None)

        alone = "".join([e.text async for e in run() if isinstance(e, Text)])
        stream = run()
        first = await anext(stream)
        assert isinstance(first, Text)
        await until(lambda: loaded.runner.paused_slots == 1, "a pause")
        at_pause = generated(loaded)
        await asyncio.sleep(0.5)  # many steps' worth: a paused job gets none of them
        held = generated(loaded) - at_pause  # but the step under way when it paused
        parts, done = [first.text], None
        async for event in stream:
            if isinstance(event, Text):
                parts.append(event.text)
            else:
                done = event
        assert isinstance(done, Done) and done.eval_count == count and done.reason == "length"
        return alone, "".join(parts), at_pause, held

    alone, paused, at_pause, held = with_model(home, 60.0, scenario)
    assert at_pause <= BACKLOG + 4  # the reader had taken one event: the rest waited, then it paused
    assert held <= 1
    assert paused == alone  # paused and resumed, the same greedy text


def test_a_reader_that_stops_reading_is_given_up_on(home: Path) -> None:
    async def scenario(manager: ModelManager, loaded: Loaded) -> tuple[int, str]:
        prompt = loaded.runner.model.tokenize(CHATML.format("Write a long story about a lighthouse."))
        params = SamplingParams(temperature=0)
        stream = manager.generate(loaded, prompt, params, num_predict=4000, stop=[], grammar=None)
        await anext(stream)
        await until(lambda: loaded.runner.paused_slots == 1, "a pause")
        await until(lambda: loaded.runner.busy_slots == 0, "the slot to be freed")  # after the stall
        events = [event async for event in stream]
        last = events[-1]
        assert isinstance(last, Done)
        return len(events), last.reason

    count, reason = with_model(home, 0.3, scenario)
    assert reason == "cancel" and count <= BACKLOG + 4
