"""The engine on its own: real llama.cpp, the bundled SmolLM2 weights, no HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avocado.node.engine import compute
from avocado.node.engine.errors import EngineError
from avocado.node.engine.jobs import Done, EmbedJob, GenerateJob, Text
from avocado.node.engine.llama import Batch, ContextParams, LlamaContext, LlamaModel
from avocado.node.engine.memory import estimate_model_bytes
from avocado.node.engine.runner import MIN_COPY, Runner, RunnerConfig
from avocado.node.engine.sampling import GreedySampler, SamplerChain, SamplingParams
from avocado.node.engine.slot import StopMatcher
from avocado.node.store.store import ModelStore
from tests.node.engine.support import CHATML, QUESTIONS, Collector, greedy_job
from tests.support import SMOLLM


@pytest.fixture(scope="module")
def runner(home: Path) -> Iterator[Runner]:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    running = Runner(RunnerConfig(path, num_ctx=1024, num_batch=256, num_thread=2))
    yield running
    running.close()


def run(
    runner: Runner, prompt: str, *, stop: list[str] | None = None, n: int = 24, **params: object
) -> tuple[str, Done]:
    events: list[Text | Done | BaseException] = []
    finished = threading.Event()

    def emit(event: Text | Done | BaseException) -> None:
        events.append(event)
        if not isinstance(event, Text):
            finished.set()

    sampling = SamplingParams(**{"temperature": 0.0, **params})
    runner.submit(
        GenerateJob(runner.model.tokenize(CHATML.format(prompt)), sampling, n, stop or [], None, emit)
    )
    assert finished.wait(120)
    last = events[-1]
    if isinstance(last, BaseException):
        raise last
    assert isinstance(last, Done)
    return "".join(e.text for e in events if isinstance(e, Text)), last


def test_greedy_is_deterministic_and_counts_tokens(runner: Runner) -> None:
    first, done = run(runner, "What is the capital of France?")
    second, _ = run(runner, "What is the capital of France?")
    assert first == second and "Paris" in first
    assert 0 < done.eval_count <= 24 and done.reason in ("stop", "length")
    assert done.prompt_eval_count > 5 and done.eval_duration > 0


def test_same_seed_same_sample(runner: Runner) -> None:
    a, _ = run(runner, "Invent a name.", temperature=1.0, seed=7)
    b, _ = run(runner, "Invent a name.", temperature=1.0, seed=7)
    assert a == b


def test_num_predict_limits_output(runner: Runner) -> None:
    _, done = run(runner, "Tell me a long story.", n=5)
    assert done.eval_count == 5 and done.reason == "length"


def test_stop_sequence_is_cut_and_not_emitted(runner: Runner) -> None:
    free, _ = run(runner, "Count from 1 to 10 separated by commas.", n=40)
    assert "3" in free
    text, done = run(runner, "Count from 1 to 10 separated by commas.", n=40, stop=["3"])
    assert done.reason == "stop" and "3" not in text
    assert free.startswith(text)


def test_follow_up_reuses_the_prompt_prefix(runner: Runner) -> None:
    _, first = run(runner, "Describe the sea in one sentence.", n=4)
    assert first.prompt_cached < first.prompt_eval_count
    prompt = runner.model.tokenize(CHATML.format("Describe the sea in one sentence."))
    follow = prompt + runner.model.tokenize("The sea", add_special=False)  # the conversation, continued
    events: list[object] = []
    finished = threading.Event()

    def emit(event: object) -> None:
        events.append(event)
        if isinstance(event, Done | BaseException):
            finished.set()

    runner.submit(GenerateJob(follow, SamplingParams(temperature=0), 2, [], None, emit))
    assert finished.wait(60)
    done = events[-1]
    assert isinstance(done, Done)
    assert done.prompt_cached >= len(prompt) - 1


def test_stop_matcher_holds_back_partial_stops() -> None:
    matcher = StopMatcher(["</end>"])
    assert matcher.feed("hello </") == ("hello ", False)
    assert matcher.feed("en") == ("", False)
    assert matcher.feed("d> tail") == ("", True)
    other = StopMatcher(["</end>"])
    assert other.feed("a </") == ("a ", False)
    assert other.feed("b") == ("</b", False)


def test_cancel_stops_promptly(runner: Runner) -> None:
    events: list[object] = []
    finished = threading.Event()

    def emit(event: object) -> None:
        events.append(event)
        if len(events) == 3:
            job.cancelled.set()
        if isinstance(event, Done):
            finished.set()

    job = GenerateJob(
        runner.model.tokenize(CHATML.format("Write an essay.")), SamplingParams(), 5000, [], None, emit
    )
    runner.submit(job)
    assert finished.wait(30)
    done = events[-1]
    assert isinstance(done, Done) and done.reason == "cancel" and done.eval_count < 20


def test_grammar_constrains_output(runner: Runner) -> None:
    events: list[object] = []
    finished = threading.Event()
    grammar = 'root ::= "yes" | "no"'
    job = GenerateJob(
        runner.model.tokenize(CHATML.format("Is water wet?")), SamplingParams(temperature=0), 8, [], grammar,
        lambda e: (events.append(e), isinstance(e, Done) and finished.set()),
    )  # fmt: skip
    runner.submit(job)
    assert finished.wait(60)
    assert "".join(e.text for e in events if isinstance(e, Text)) in ("yes", "no")


def test_embeddings(runner: Runner) -> None:
    result: list[object] = []
    finished = threading.Event()
    inputs = [runner.model.tokenize("hello"), runner.model.tokenize("a completely different sentence")]
    runner.submit(EmbedJob(inputs, lambda r: (result.append(r), finished.set())))
    assert finished.wait(60)
    vectors = result[0]
    assert isinstance(vectors, list) and len(vectors) == 2 and len(vectors[0]) == 576
    assert vectors[0] != vectors[1]


def test_prompt_over_the_context_is_an_error_and_runner_survives(runner: Runner) -> None:
    events: list[object] = []
    finished = threading.Event()
    job = GenerateJob([1] * 2000, SamplingParams(), 4, [], None, lambda e: (events.append(e), finished.set()))
    runner.submit(job)
    assert finished.wait(30)
    assert isinstance(events[0], EngineError) and "does not fit" in str(events[0])
    assert run(runner, "Hi", n=2)[1].eval_count == 2


def test_full_context_shifts_and_generation_goes_on(home: Path) -> None:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    small = Runner(RunnerConfig(path, num_ctx=128, num_batch=128, num_thread=2))
    try:
        events: list[object] = []
        finished = threading.Event()

        def emit(event: object) -> None:
            events.append(event)
            if not isinstance(event, Text):
                finished.set()

        prompt = small.model.tokenize("1, 2, 3, 4, 5, 6, 7, 8, 9, 10,")
        small.submit(GenerateJob(prompt, SamplingParams(temperature=0), 300, [], None, emit))
        assert finished.wait(120)
        done = events[-1]
        assert isinstance(done, Done), done
        assert small.n_ctx < len(prompt) + 300  # llama.cpp may round the context up, but not this far
        assert done.eval_count == 300 and done.reason == "length"
        assert len(done.context) <= small.n_ctx
    finally:
        small.close()


@pytest.fixture(scope="module")
def batched(home: Path) -> Iterator[Runner]:
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    running = Runner(RunnerConfig(path, num_ctx=512, num_batch=256, num_thread=2, parallel=4))
    yield running
    running.close()


def test_batched_greedy_matches_alone(batched: Runner) -> None:
    alone = []
    for question in QUESTIONS:
        job, collector = greedy_job(batched, question)
        batched.submit(job)
        assert collector.done.eval_count > 0
        alone.append(collector.text)
    jobs = [greedy_job(batched, q) for q in QUESTIONS]  # 5 jobs for 4 slots: one waits for a free slot
    for job, _ in jobs:
        batched.submit(job)
    together = []
    for _, collector in jobs:
        assert collector.done.eval_count > 0
        together.append(collector.text)
    assert together == alone


def test_new_request_joins_while_another_generates(batched: Runner) -> None:
    long_job, long_run = greedy_job(batched, "Write a long essay about the history of sailing.", n=400)
    batched.submit(long_job)
    while not long_run.first_text_at:
        time.sleep(0.01)
    short_job, short_run = greedy_job(batched, "Name a colour.", n=8)
    batched.submit(short_job)
    assert short_run.done.eval_count > 0
    assert not long_run.finished.is_set(), "the short request had to wait for the long one"
    long_job.cancelled.set()
    assert long_run.done.reason == "cancel"


def test_cancel_frees_the_slot_at_once(batched: Runner) -> None:
    jobs = [greedy_job(batched, f"Tell story number {i}.", n=2000) for i in range(4)]
    for job, _ in jobs:
        batched.submit(job)
    for _, collector in jobs:
        while not collector.first_text_at:
            time.sleep(0.01)
    waiting_job, waiting = greedy_job(batched, "Name a colour.", n=4)
    batched.submit(waiting_job)  # all four slots are busy: this one waits
    time.sleep(0.3)
    assert not waiting.first_text_at
    jobs[0][0].cancelled.set()
    assert waiting.done.eval_count > 0
    for job, collector in jobs:
        job.cancelled.set()
        assert collector.done.reason in ("cancel", "stop", "length")


@pytest.mark.parametrize(
    "penalties",
    [
        {"repeat_penalty": 1.1},  # Ollama's default
        {"repeat_penalty": 1.3, "frequency_penalty": 0.2, "presence_penalty": 0.1},  # lower only
        {"repeat_penalty": 0.8, "frequency_penalty": -0.2},  # raise recent tokens
    ],
)
def test_greedy_fast_path_picks_what_the_llama_cpp_chain_picks(
    home: Path, penalties: dict[str, float]
) -> None:
    """Same logits, both samplers, 96 steps with repetition penalties in play: identical tokens."""
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    model = LlamaModel(path)
    ctx = LlamaContext(model, ContextParams(n_ctx=512, n_batch=256, n_threads=2))
    batch = Batch(256)
    try:
        params = SamplingParams(temperature=0, **penalties)
        chain = SamplerChain(model.vocab, model.n_vocab, 512, params, None)
        fast = GreedySampler(512, params)
        prompt = model.tokenize(CHATML.format("Repeat the word 'echo' many times."))
        for pos, token in enumerate(prompt):
            batch.add(token, pos, 0, pos == len(prompt) - 1)
        ctx.decode(batch)
        index, overruled = len(prompt) - 1, 0
        for pos in range(len(prompt), len(prompt) + 96):
            unpenalised = int(ctx.logits(index).argmax())
            expected = chain.sample(ctx, index)  # reads the logits without changing them
            assert fast.sample(ctx, index) == expected
            overruled += expected != unpenalised
            batch.clear()
            batch.add(expected, pos, 0, True)
            ctx.decode(batch)
            index = 0
        assert overruled  # the penalties changed the winner at some steps
        chain.close()
    finally:
        batch.free()
        ctx.close()
        model.close()


# A system prompt of about 150 tokens that every request below starts with.
SYSTEM = (
    "<|im_start|>system\nYou are the reference desk of a small town library. "
    + " ".join(f"Shelf {n} holds books about topic number {n}." for n in range(1, 13))
    + "<|im_end|>\n"
)


def job_after_system(runner: Runner, question: str, n: int) -> tuple[GenerateJob, Collector]:
    collector = Collector()
    prompt = runner.model.tokenize(SYSTEM + CHATML.format(question))
    return GenerateJob(prompt, SamplingParams(temperature=0), n, [], None, collector), collector


def test_a_prompt_takes_the_prefix_another_slot_holds(batched: Runner) -> None:
    system_tokens = len(batched.model.tokenize(SYSTEM))

    def forget_all() -> None:  # no slot holds the system prompt now: the next job evaluates it
        for slot in batched.slots:
            slot.cached = slot.cached[:1]

    # Reference: the second job reuses the first one's cells in the same slot, after it ended.
    # (Reused cells are not bit-identical to evaluating the prompt in one go, as llama-server's docs
    # say of its prompt cache; so the reference reuses them too.)
    forget_all()
    first_job, first = job_after_system(batched, "What is the capital of France?", 48)
    batched.submit(first_job)
    assert first.done.eval_count > 0
    second_job, second = job_after_system(batched, "What is the capital of Italy?", 16)
    batched.submit(second_job)
    assert second.done.prompt_cached >= system_tokens

    forget_all()
    busy_job, busy = job_after_system(batched, "What is the capital of France?", 48)
    batched.submit(busy_job)
    while not busy.first_text_at:  # it holds a slot, and the system prompt, from now on
        time.sleep(0.01)
    other_job, other = job_after_system(batched, "What is the capital of Italy?", 16)
    batched.submit(other_job)
    assert other.done.prompt_cached == second.done.prompt_cached  # copied from the busy slot
    assert other.text == second.text
    assert busy.done.prompt_cached <= 1 and busy.text == first.text  # the lender is intact

    forget_all()
    busy_job, busy = job_after_system(batched, "What is the capital of France?", 200)
    batched.submit(busy_job)
    while not busy.first_text_at:
        time.sleep(0.01)
    little = Collector()  # a few tokens in common: evaluating them costs less than copying a slot
    prompt = busy_job.prompt[: MIN_COPY - 2] + batched.model.tokenize(" Name a colour.")
    batched.submit(GenerateJob(prompt, SamplingParams(temperature=0), 4, [], None, little))
    assert little.done.prompt_cached <= 1
    busy_job.cancelled.set()
    assert busy.done.reason == "cancel"


def test_requests_that_arrive_together_evaluate_their_common_start_once(batched: Runner) -> None:
    system_tokens = len(batched.model.tokenize(SYSTEM))
    for slot in batched.slots:
        slot.cached = slot.cached[:1]
    questions = ["What is the capital of France?", "What is the capital of Italy?", "Name a colour.", "Hi"]
    jobs = [job_after_system(batched, question, 8) for question in questions]
    for job, _ in jobs:
        batched.submit(job)
    cached = [collector.done.prompt_cached for _, collector in jobs]
    assert cached[0] <= 1  # the first evaluates the system prompt ...
    assert all(n >= system_tokens for n in cached[1:]), cached  # ... the others wait for it and copy it
    assert all(collector.text for _, collector in jobs)


def test_requests_sent_together_start_in_one_batch(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "GATHER_GAP", 0.05)  # room for a slow machine between submits
    path = ModelStore(home / "models").resolve(SMOLLM).model_path
    idle = Runner(RunnerConfig(path, num_ctx=512, num_batch=256, num_thread=2, parallel=4))
    try:
        jobs = [greedy_job(idle, question, 2) for question in QUESTIONS[:4]]
        for job, _ in jobs:
            idle.submit(job)
            time.sleep(0.005)  # as an event loop hands them over, one request after another
        assert all(collector.done.eval_count for _, collector in jobs)
        firsts = [collector.first_text_at for _, collector in jobs]
        assert max(firsts) - min(firsts) < 0.005  # one prefill step for all, not the first alone
    finally:
        idle.close()


def test_memory_size_counts_the_kv_buffers(home: Path, runner: Runner) -> None:
    model = ModelStore(home / "models").resolve(SMOLLM)
    file_size = model.model_path.stat().st_size

    def estimate(context: int) -> int:  # from the GGUF header alone
        return estimate_model_bytes(model.info, file_size, context, 1)

    kv = runner.memory_size - runner.model.size
    assert kv == estimate(runner.n_ctx) - estimate(0) > 20_000_000  # 1024 tokens x 30 layers x ...
