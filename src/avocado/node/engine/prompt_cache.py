"""Prompts kept in host memory after their slot has moved on, as llama-server's ``--cache-ram`` does.

A model has a few slots and a node serves more conversations than that. Before a slot takes a job
whose prompt does not continue what the slot holds, a copy of the slot's KV memory is put here
(``llama_state_seq_get_data``: about 22 KB a token for SmolLM2), and a later prompt that starts
like a saved one has it copied back into its slot (``llama_state_seq_set_data``) instead of
evaluating that start again: the next turn of a conversation that lost its slot, or the next
request of an app whose system prompt no slot holds any more. When the budget is full the least
recently used prompts go first. The budget is counted in the model's memory (``--max-memory``,
``/api/ps``), so a full cache never takes memory the node did not plan for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avocado.node.engine.slot import common_prefix

__all__ = ["MAX_PROMPTS", "PromptCache", "SavedPrompt"]

# Every placement compares its prompt with every saved one; this keeps that scan short.
MAX_PROMPTS = 256


@dataclass(slots=True)
class SavedPrompt:
    tokens: list[int]  # what the state holds, position by position
    state: np.ndarray  # llama_state_seq_get_data's bytes

    @property
    def size(self) -> int:
        return int(self.state.nbytes)


class PromptCache:
    """Saved prompts of one model, least recently used first, within ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._prompts: list[SavedPrompt] = []

    def __len__(self) -> int:
        return len(self._prompts)

    def holds(self, tokens: list[int]) -> bool:
        """Whether a saved prompt already starts with all of ``tokens`` (it is then used again)."""
        for saved in self._prompts:
            if len(saved.tokens) >= len(tokens) and common_prefix(saved.tokens, tokens) == len(tokens):
                self._touch(saved)
                return True
        return False

    def add(self, saved: SavedPrompt) -> None:
        """Keep ``saved``, dropping what it makes useless and then the least recently used."""
        if not self.limit or saved.size > self.limit:
            return
        for old in [p for p in self._prompts if common_prefix(p.tokens, saved.tokens) == len(p.tokens)]:
            self._drop(old)  # it serves every prompt that a saved prompt it begins with serves
        while self._prompts and (self.size + saved.size > self.limit or len(self._prompts) >= MAX_PROMPTS):
            self._drop(self._prompts[0])
        self._prompts.append(saved)
        self.size += saved.size

    def find(self, prompt: list[int]) -> tuple[SavedPrompt | None, int]:
        """The saved prompt that holds the longest usable start of ``prompt``, and how long it is.

        At most ``len(prompt) - 1`` tokens count: the last one is evaluated for its logits.
        """
        best: SavedPrompt | None = None
        longest = 0
        for saved in self._prompts:
            common = min(common_prefix(saved.tokens, prompt), len(prompt) - 1)
            if common > longest:
                best, longest = saved, common
        if best is not None:
            self._touch(best)
        return best, longest

    def report(self) -> dict[str, int]:
        """How full it is, for the node's status (read from another thread: a moment's snapshot)."""
        return {"prompts": len(self._prompts), "size": self.size, "limit": self.limit}

    def clear(self) -> None:
        self._prompts = []
        self.size = 0

    def _touch(self, saved: SavedPrompt) -> None:
        self._prompts.remove(saved)
        self._prompts.append(saved)

    def _drop(self, saved: SavedPrompt) -> None:
        self._prompts.remove(saved)
        self.size -= saved.size
