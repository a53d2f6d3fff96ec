"""Every runner in a process decodes on one compute thread; busy models take turns step by step."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from avocado.node.engine import compute
from avocado.node.engine.errors import EngineError
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.store.store import ModelStore
from tests.node.engine.support import QUESTIONS, greedy_job
from tests.support import SMOLLM


@pytest.fixture(scope="module")
def two(home: Path) -> Iterator[tuple[Runner, Runner]]:
    """Two models loaded at once (two contexts over the SmolLM2 weights)."""
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    first = Runner(RunnerConfig(path, num_ctx=512, num_batch=256, num_thread=2, parallel=2))
    second = Runner(RunnerConfig(path, num_ctx=512, num_batch=256, num_thread=2, parallel=2))
    yield first, second
    first.close()
    second.close()


def test_two_models_decode_on_one_thread(two: tuple[Runner, Runner], monkeypatch: pytest.MonkeyPatch) -> None:
    threads: set[int] = set()
    decode = llama_cpp.llama_decode

    def watched(*args: Any) -> Any:
        threads.add(threading.get_ident())
        return decode(*args)

    monkeypatch.setattr(llama_cpp, "llama_decode", watched)
    jobs = [greedy_job(runner, question, 8) for runner in two for question in QUESTIONS[:2]]
    for (job, _), runner in zip(jobs, [two[0], two[0], two[1], two[1]], strict=True):
        runner.submit(job)
    assert all(collector.done.eval_count for _, collector in jobs)
    assert len(threads) == 1  # one OpenMP team for the process, however many models are loaded


def test_busy_models_take_turns_and_keep_their_answers(two: tuple[Runner, Runner]) -> None:
    first, second = two
    alone = []
    for question in QUESTIONS[:2]:
        job, collector = greedy_job(second, question, 12)
        second.submit(job)
        assert collector.done.eval_count
        alone.append(collector.text)
    long_job, long_run = greedy_job(first, "Write a long essay about the history of sailing.", n=300)
    first.submit(long_job)
    short = [greedy_job(second, question, 12) for question in QUESTIONS[:2]]
    for job, _ in short:
        second.submit(job)
    assert all(collector.done.eval_count for _, collector in short)
    assert [collector.text for _, collector in short] == alone
    assert not long_run.finished.is_set()  # the other model's answers did not wait for the long one
    assert long_run.done.eval_count == 300


def test_closing_one_model_leaves_the_other_generating(home: Path, two: tuple[Runner, Runner]) -> None:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    leaving = Runner(RunnerConfig(path, num_ctx=256, num_batch=128, num_thread=2))
    staying = two[0]
    job, running = greedy_job(staying, "Write a long story about a lighthouse.", n=120)
    staying.submit(job)
    doomed, cut = greedy_job(leaving, "Write a long story about a mountain.", n=120)
    late, refused = greedy_job(leaving, "Hello?", 4)  # tokenized while the model is still loaded
    leaving.submit(doomed)
    while not (running.first_text_at and cut.first_text_at):
        assert not (running.finished.is_set() or cut.finished.is_set())
        time.sleep(0.01)
    leaving.close()
    assert isinstance(cut.events[-1], EngineError)  # its job was in hand: it ends with an error
    assert running.done.eval_count == 120
    leaving.submit(late)  # a job that comes after close is refused, not lost
    assert refused.finished.wait(10)
    assert isinstance(refused.events[-1], EngineError)


def test_gathering_stops_when_the_slots_are_taken(
    two: tuple[Runner, Runner], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = two[0]  # two slots
    monkeypatch.setattr(compute, "GATHER_GAP", 0.05)  # each arrival comes well within it
    first_decode: list[float] = []
    decode = llama_cpp.llama_decode

    def watched(*args: Any) -> Any:
        if not first_decode:
            first_decode.append(time.monotonic())
        return decode(*args)

    monkeypatch.setattr(llama_cpp, "llama_decode", watched)
    jobs = [greedy_job(runner, QUESTIONS[i % len(QUESTIONS)], 1) for i in range(30)]
    for job, _ in jobs:
        runner.submit(job)
        time.sleep(0.02)
    last_submit = time.monotonic()
    assert all(collector.done.eval_count for _, collector in jobs)
    assert first_decode[0] < last_submit - 0.3  # decoding began once both slots had a job


def test_a_model_failing_outside_a_step_is_unloaded_and_the_others_go_on(
    home: Path, two: tuple[Runner, Runner], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    broken = Runner(RunnerConfig(path, num_ctx=256, num_batch=128, num_thread=2))

    def fail() -> None:
        raise RuntimeError("admission failed")

    monkeypatch.setattr(broken, "_admit", fail)  # a fault the runner's own step guard does not catch
    job, collector = greedy_job(broken, "Hello!", 4)
    broken.submit(job)
    assert collector.finished.wait(30)
    assert isinstance(collector.events[-1], EngineError)  # its client hears of it, nothing hangs
    assert broken.closed
    other, answer = greedy_job(two[0], QUESTIONS[0], 4)
    two[0].submit(other)
    assert answer.done.eval_count
    broken.close()  # already released: returns at once
