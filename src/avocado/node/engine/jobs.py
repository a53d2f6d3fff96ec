"""Work handed to a runner and what comes back from it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from avocado.node.engine.sampling import SamplingParams

__all__ = ["Done", "EmbedJob", "Emit", "Event", "GenerateJob", "Text"]


@dataclass(slots=True)
class Text:
    """A piece of generated text."""

    text: str


@dataclass(slots=True)
class Done:
    """The end of a generation, with Ollama's counters (durations in nanoseconds)."""

    reason: str  # "stop", "length" or "cancel"
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    context: list[int]
    prompt_cached: int = 0  # prompt tokens found in KV memory already (not evaluated again)


Event = Text | Done | BaseException
Emit = Callable[[Event], None]


@dataclass(slots=True)
class GenerateJob:
    prompt: list[int]
    params: SamplingParams
    num_predict: int
    stop: list[str]
    grammar: str | None
    emit: Emit
    cancelled: threading.Event = field(default_factory=threading.Event)
    num_keep: int = 4  # tokens kept at the start when a full context shifts
    fill_context: bool = False  # end when the context is full instead of shifting it (num_predict -2)
    # Set on the event loop while the job's reader is behind (see EventStream): the runner skips
    # the job's slot, keeping its KV memory, until the reader catches up.
    paused: bool = False


@dataclass(slots=True)
class EmbedJob:
    inputs: list[list[int]]
    emit: Callable[[list[list[float]] | BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
