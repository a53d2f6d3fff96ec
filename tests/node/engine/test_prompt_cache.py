"""The prompt cache: its bookkeeping alone, then a runner that saves and restores real KV memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avocado.node.engine.jobs import Done, GenerateJob
from avocado.node.engine.prompt_cache import MAX_PROMPTS, PromptCache, SavedPrompt
from avocado.node.engine.runner import SAVE_AT_LEAST, Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.engine.slot import common_prefix
from avocado.node.store.store import ModelStore
from tests.node.engine.support import CHATML, Collector
from tests.support import SMOLLM


def saved(tokens: list[int], size: int = 100) -> SavedPrompt:
    return SavedPrompt(tokens, np.zeros(size, dtype=np.uint8))


def test_common_prefix_counts_the_shared_start() -> None:
    assert common_prefix([], [1, 2]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([5], [6]) == 0
    long = list(range(5000))
    for cut in (0, 1, 2, 777, 4095, 4999):
        other = [*long[:cut], -1, *long[cut + 1 :]]
        assert common_prefix(long, other) == cut
        assert common_prefix(other, long) == cut


def test_find_returns_the_longest_start_but_never_the_last_token() -> None:
    cache = PromptCache(10_000)
    cache.add(saved([1, 2, 3, 4]))
    cache.add(saved([1, 2, 9, 9, 9]))
    cache.add(saved([7, 7]))
    entry, common = cache.find([1, 2, 3, 8])
    assert entry is not None and entry.tokens == [1, 2, 3, 4] and common == 3
    entry, common = cache.find([1, 2, 3, 4])  # the whole entry, but the last token is evaluated again
    assert entry is not None and entry.tokens == [1, 2, 3, 4] and common == 3
    assert cache.find([5, 6]) == (None, 0)


def test_a_full_cache_drops_the_least_recently_used() -> None:
    cache = PromptCache(300)
    for first in (1, 2, 3):
        cache.add(saved([first, 0, 0]))
    assert cache.find([1, 0, 0, 5])[0] is not None  # 1 is now the most recently used
    cache.add(saved([4, 0, 0]))
    assert cache.size == 300 and len(cache) == 3
    assert cache.report() == {"prompts": 3, "size": 300, "limit": 300}
    assert cache.find([2, 0, 0, 5]) == (None, 0)  # 2 was the least recently used
    for first in (1, 3, 4):
        assert cache.find([first, 0, 0, 5])[0] is not None


def test_a_prompt_larger_than_the_budget_is_not_kept() -> None:
    cache = PromptCache(300)
    cache.add(saved([1, 2]))
    cache.add(saved([3, 4], size=301))
    assert len(cache) == 1 and cache.size == 100
    disabled = PromptCache(0)
    disabled.add(saved([1, 2]))
    assert len(disabled) == 0


def test_a_longer_prompt_replaces_the_prompts_it_begins_with() -> None:
    cache = PromptCache(10_000)
    cache.add(saved([1, 2]))
    cache.add(saved([1, 2, 3, 4]))
    cache.add(saved([1, 5]))
    assert len(cache) == 2 and cache.size == 200
    assert cache.holds([1, 2, 3]) and cache.holds([1, 5]) and not cache.holds([1, 2, 3, 4, 5])


def test_the_number_of_prompts_is_bounded() -> None:
    cache = PromptCache(1 << 30)
    for first in range(MAX_PROMPTS + 10):
        cache.add(saved([first, 0]))
    assert len(cache) == MAX_PROMPTS
    assert cache.find([0, 0, 1]) == (None, 0) and cache.find([MAX_PROMPTS + 9, 0, 1])[0] is not None


# -- a runner with one slot: every other conversation has to come back from the cache ---------------

SYSTEM = "<|im_start|>system\nYou are a helpful assistant who answers in full sentences.<|im_end|>\n"
TURN = "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def model_path(home: Path) -> Path:
    return ModelStore(home / "models").resolve(SMOLLM).model_path


def one_slot(path: Path, cache: int) -> Runner:
    return Runner(RunnerConfig(path, num_ctx=1024, num_batch=256, num_thread=2, prompt_cache=cache))


def generate(runner: Runner, prompt: list[int], n: int = 16) -> tuple[str, Done]:
    collector = Collector()
    runner.submit(GenerateJob(prompt, SamplingParams(temperature=0), n, [], None, collector))
    done = collector.done
    return collector.text, done


def first_turn(runner: Runner, question: str) -> list[int]:
    return runner.model.tokenize(SYSTEM + CHATML.format(question))


def next_turn(runner: Runner, done: Done, question: str) -> list[int]:
    """The prompt of a conversation's next turn: what the model saw and said, and a new question."""
    return done.context + runner.model.tokenize(TURN.format(question), add_special=False)


def test_a_conversation_that_lost_its_slot_comes_back_from_the_cache(model_path: Path) -> None:
    # Reference: the conversation keeps its slot between its turns.
    plain = one_slot(model_path, 0)
    try:
        _, first = generate(plain, first_turn(plain, "Tell me about sailing ships."))
        follow_up = next_turn(plain, first, "And about their sails?")
        expected, kept = generate(plain, follow_up)
        generate(plain, first_turn(plain, "What is bread made of?"))  # takes the only slot
        _, lost = generate(plain, follow_up)
        assert lost.prompt_cached < 30  # without a cache: the chat template's start at most
    finally:
        plain.close()

    runner = one_slot(model_path, 64 << 20)
    try:
        _, first = generate(runner, first_turn(runner, "Tell me about sailing ships."))
        assert next_turn(runner, first, "And about their sails?") == follow_up
        generate(runner, first_turn(runner, "What is bread made of?"))  # saves the first conversation
        assert len(runner.prompt_cache) == 1
        text, restored = generate(runner, follow_up)
        assert restored.prompt_cached == kept.prompt_cached >= len(first.context) - 1
        assert text == expected  # the same KV memory, so the same greedy answer
        assert len(runner.prompt_cache) == 2  # the bread conversation was saved in its turn
    finally:
        runner.close()


def test_the_cache_keeps_to_its_budget_and_drops_the_oldest(model_path: Path) -> None:
    probe = one_slot(model_path, 0)
    try:  # the size of one conversation's KV memory, to size the budget for about two
        generate(probe, first_turn(probe, "Name a colour."))
        one = probe.ctx.save_sequence(0).nbytes
    finally:
        probe.close()
    runner = one_slot(model_path, int(2.5 * one))
    try:
        topics = ["colour", "river", "planet", "fruit"]
        dones = [generate(runner, first_turn(runner, f"Name a {topic}."))[1] for topic in topics]
        assert runner.prompt_cache.size <= runner.prompt_cache.limit and len(runner.prompt_cache) == 2
        # The fourth holds the slot; the second and third are saved; the first was dropped.
        _, back = generate(runner, next_turn(runner, dones[2], "Another one?"))
        assert back.prompt_cached >= len(dones[2].context) - 1
        _, gone = generate(runner, next_turn(runner, dones[0], "Another one?"))
        shared = max(common_prefix(dones[0].context, done.context) for done in dones[1:])
        assert gone.prompt_cached <= shared < len(dones[0].context) - 8  # only what the others hold
    finally:
        runner.close()


def test_short_leftovers_are_not_saved(model_path: Path) -> None:
    runner = one_slot(model_path, 64 << 20)
    try:
        prompt = first_turn(runner, "Name a colour.")
        generate(runner, prompt, n=1)
        # The same prompt but its last few tokens: the slot loses fewer than SAVE_AT_LEAST.
        generate(runner, [*prompt[:-3], *runner.model.tokenize(" Hi", add_special=False)], n=1)
        assert len(runner.prompt_cache) == 0
        generate(runner, first_turn(runner, "Describe the moon."), n=SAVE_AT_LEAST)
        generate(runner, first_turn(runner, "Name a river."), n=1)  # loses the moon's answer: saved
        assert len(runner.prompt_cache) == 1
    finally:
        runner.close()


def test_memory_size_counts_the_cache_budget(model_path: Path) -> None:
    plain, budgeted = one_slot(model_path, 0), one_slot(model_path, 32 << 20)
    try:
        assert budgeted.memory_size - plain.memory_size == 32 << 20
    finally:
        plain.close()
        budgeted.close()
