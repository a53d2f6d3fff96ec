"""A decode that fails ends only the requests whose tokens fail it; the others, and what every
slot holds in KV memory, carry on.

One request's bad context tokens once failed every job of its model and cleared every slot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from avocado.node.engine.errors import EngineError
from avocado.node.engine.jobs import Done, GenerateJob
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.store.store import ModelStore
from tests.node.engine.support import Collector, greedy_job
from tests.support import SMOLLM


@pytest.fixture
def runner(home: Path) -> Iterator[Runner]:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    running = Runner(RunnerConfig(path, num_ctx=512, num_batch=256, num_thread=2, parallel=4))
    yield running
    running.close()


def raw_job(runner: Runner, tokens: list[int], n: int = 8) -> tuple[GenerateJob, Collector]:
    collector = Collector()
    return GenerateJob(tokens, SamplingParams(temperature=0), n, [], None, collector), collector


def failure(collector: Collector) -> BaseException:
    assert collector.finished.wait(120)
    last = collector.events[-1]
    assert isinstance(last, BaseException), last
    return last


def test_a_bad_token_fails_its_own_job_only(runner: Runner) -> None:
    story = runner.model.tokenize("Once upon a time, in a small village by the sea,")
    kept_job, kept = raw_job(runner, story)
    runner.submit(kept_job)
    kept_context = kept.done.context  # now in a slot's KV memory

    alone_job, alone = greedy_job(runner, "Name three colours.", n=32)
    runner.submit(alone_job)
    expected = alone.text if alone.done else ""

    good_job, good = greedy_job(runner, "Name three colours.", n=32)
    runner.submit(good_job)
    assert good.generating.wait(60)  # the bad prompt joins the batches of its generation
    bad_job, bad = raw_job(runner, [*runner.model.tokenize("Hello there"), runner.model.n_vocab + 5])
    runner.submit(bad_job)

    assert isinstance(failure(bad), EngineError)
    assert isinstance(good.done, Done) and good.text == expected  # as if it had been alone
    follow_up_job, follow_up = raw_job(runner, kept_context + runner.model.tokenize(" there lived"))
    runner.submit(follow_up_job)
    assert follow_up.done.prompt_cached >= len(kept_context) - 1  # its slot's memory was not cleared


def test_a_failed_prompt_chunk_leaves_the_slot_consistent(runner: Runner) -> None:
    """A bad token deep in a long prompt: the chunks before it stay evaluated, the slot is reused."""
    words = runner.model.tokenize("the quick brown fox jumps over the lazy dog " * 40)[:300]
    bad_job, bad = raw_job(runner, [*words, -1])  # past the 256-token batch: its second chunk fails
    runner.submit(bad_job)
    assert isinstance(failure(bad), EngineError)
    again_job, again = raw_job(runner, [*words, words[0]])
    runner.submit(again_job)
    assert again.done.prompt_cached == 256  # the first chunk, decoded before the failure


def test_jobs_started_together_with_a_bad_one_all_finish(runner: Runner) -> None:
    barrier = threading.Barrier(3)
    jobs = [greedy_job(runner, q, n=16) for q in ("Name a fruit.", "Name a river.")]
    bad_job, bad = raw_job(runner, [runner.model.n_vocab * 2, 1, 2])

    def submit(job: GenerateJob) -> None:
        barrier.wait()
        runner.submit(job)

    threads = [threading.Thread(target=submit, args=(job,)) for job in (jobs[0][0], jobs[1][0], bad_job)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(failure(bad), EngineError)
    for _, collector in jobs:
        assert collector.done.eval_count > 0
