"""The node's use cases, shared by the Ollama and OpenAI routers: resolve, prompt, run.

Routers validate and shape HTTP; this module decides what a request means.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from avocado.config import Settings
from avocado.logs import note
from avocado.names import InvalidModelName
from avocado.node.engine import Done, GpuAsk, Loaded, ModelManager, SamplingParams, Text

# llama_cpp's grammar helpers, through the engine: llama.cpp loads after the engine's CUDA libraries.
from avocado.node.engine.sampling import JSON_GBNF, json_schema_to_gbnf
from avocado.node.options import OptionError, validate_options
from avocado.node.prompt import PromptBuilder, PromptError, PromptLimit
from avocado.node.store.store import Model, ModelStore
from avocado.node.templates.gotemplate import Limits
from avocado.units import DurationError, parse_duration

__all__ = [
    "INLINE_LIMITS",
    "MAX_REPEAT",
    "MAX_SCHEMA",
    "TEMPLATE_LIMITS",
    "BadRequest",
    "Generation",
    "NodeService",
    "NotFound",
    "check_images",
    "check_think",
    "grammar_for",
]

log = logging.getLogger(__name__)

# Prompts longer than this (characters) are rendered and tokenized in a worker thread: a long
# conversation takes tens of milliseconds, during which every other stream would stand still.
OFF_LOOP_CHARS = 20_000
# What rendering one prompt may take (a template can come with the request): range iterations (a
# chat template makes a few per message), characters (twice the largest body, max_body), seconds.
TEMPLATE_LIMITS = Limits(iterations=100_000, output=64 << 20, seconds=5.0)
# A model's template renders on the event loop while it stays this small (a few messages take well
# under a millisecond); a rendering that goes past it starts again in a worker thread.
INLINE_LIMITS = Limits(iterations=2_000, output=1 << 20, seconds=0.01)

T = TypeVar("T")


class BadRequest(ValueError):
    """The request cannot be served as asked (HTTP 400)."""


class NotFound(LookupError):
    """The model does not exist (HTTP 404)."""


@dataclass(slots=True)
class Generation:
    """Everything needed to run one generation once the model is loaded."""

    model: Model
    options: dict[str, Any]
    keep_alive: float | None
    grammar: str | None
    stop: list[str] = field(default_factory=list)
    max_predict: int = 16384  # the node's bound on any generation (settings.max_predict)

    @property
    def num_ctx(self) -> int:
        return int(self.options["num_ctx"])

    @property
    def gpu(self) -> GpuAsk:
        """The request's (or the model's) num_gpu and main_gpu; -1 is Ollama's "as many as fit"."""
        num_gpu, main_gpu = self.options.get("num_gpu"), self.options.get("main_gpu")
        return GpuAsk(
            num_gpu=None if num_gpu is None else int(num_gpu),
            main_gpu=None if main_gpu is None else int(main_gpu),
        )

    @property
    def num_keep(self) -> int:
        return int(self.options.get("num_keep", 4))

    @property
    def num_predict(self) -> int:
        """Tokens to generate at most: ``num_predict`` when it is set and within ``max_predict``
        (-1, "no limit", and -2, "fill the context", are bounded by it too), else ``max_predict``."""
        asked = int(self.options.get("num_predict", -1))
        return asked if 0 <= asked <= self.max_predict else self.max_predict

    @property
    def fill_context(self) -> bool:
        """``num_predict: -2``: generate until the context is full, without shifting it."""
        return int(self.options.get("num_predict", -1)) == -2


# A JSON schema given as ``format`` may be this long (characters), and ask for this many repetitions
# in all: llama.cpp's converter spells out ``maxLength: N`` or a pattern's ``{N}`` as N copies of a
# rule (``minLength: 100000000`` made a 500 MB grammar in 13 s; ``minItems: 10**9`` took all memory).
MAX_SCHEMA = 64 << 10
MAX_REPEAT = 10_000
_COUNTS = frozenset({"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"})
_QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


def _count(value: Any) -> int:
    """A length or count from a schema, as a number of repetitions (absurd ones as too many)."""
    if isinstance(value, str):
        return int(value) if value and len(value) <= 9 else (MAX_REPEAT + 1 if value else 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0) if math.isfinite(value) else MAX_REPEAT + 1


def _repetitions(schema: Any) -> int:
    """The repetitions a schema's lengths, counts and pattern quantifiers ask for, in all."""
    total = 0
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _COUNTS:
                    total += _count(value)
                elif key == "pattern" and isinstance(value, str):
                    total += sum(_count(low) + _count(high) for low, high in _QUANTIFIER.findall(value))
                else:
                    pending.append(value)
    return total


def grammar_for(fmt: str | dict[str, Any] | None) -> str | None:
    """``format``: ``"json"`` or a JSON schema, enforced with a GBNF grammar."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return str(JSON_GBNF)
    if isinstance(fmt, dict):
        text = json.dumps(fmt)
        if len(text) > MAX_SCHEMA:
            raise BadRequest(f"invalid JSON schema in format: {len(text)} characters, at most {MAX_SCHEMA}")
        if (repeats := _repetitions(fmt)) > MAX_REPEAT:
            raise BadRequest(
                f"invalid JSON schema in format: its lengths, counts and pattern repetitions add up to "
                f"{repeats}, at most {MAX_REPEAT}"
            )
        try:
            return str(json_schema_to_gbnf(text))
        except Exception as exc:  # the converter raises bare exceptions for schemas it cannot express
            raise BadRequest(f"invalid JSON schema in format: {exc}") from None
    raise BadRequest('format must be "json" or a JSON schema object')


def check_images(images: list[str] | None, model: Model) -> None:
    if not images:
        return
    for image in images:
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("invalid image input: images must be base64-encoded") from None
    raise BadRequest(f"model '{model.name}' does not support image input (it is a text-only model)")


def check_think(think: bool | str | None, name: str) -> None:
    """``think`` asks for a separate reasoning trace, which no model served here produces yet."""
    if think not in (None, False, ""):
        raise BadRequest(f'"{name}" does not support thinking')


class NodeService:
    def __init__(self, settings: Settings, store: ModelStore, manager: ModelManager) -> None:
        self.settings = settings
        self.store = store
        self.manager = manager

    def find_model(self, name: str) -> Model:
        if not name:
            raise BadRequest("model is required")
        note("model", name)
        try:
            if not self.store.exists(name):
                raise NotFound(f"model '{name}' not found")
            return self.store.resolve(name)
        except InvalidModelName as exc:
            raise BadRequest(str(exc)) from None

    def prepare(
        self,
        name: str,
        options: dict[str, Any] | None,
        keep_alive: str | float | int | None,
        fmt: str | dict[str, Any] | None,
    ) -> Generation:
        model = self.find_model(name)
        if model.adapters:
            raise BadRequest(f"model '{model.name}' uses a LoRA adapter, which this node cannot run yet")
        try:
            request_options = validate_options(options)
        except OptionError as exc:
            raise BadRequest(str(exc)) from None
        merged = {"num_ctx": self.settings.num_ctx, **model.parameters, **request_options}
        try:
            keep = parse_duration(keep_alive)
        except DurationError as exc:
            raise BadRequest(f"keep_alive: {exc}") from None
        stop = merged.get("stop") or []
        return Generation(model, merged, keep, grammar_for(fmt), list(stop), self.settings.max_predict)

    def builder(self, loaded: Loaded, template: str | None = None) -> PromptBuilder:
        llama = loaded.runner.model
        try:
            return PromptBuilder(
                loaded.model, template, bos=llama.token_text(llama.bos), eos=llama.token_text(llama.eos)
            )
        except PromptError as exc:
            raise BadRequest(str(exc)) from None

    async def render(self, work: Callable[[Limits], T], *, inline: bool) -> T:
        """Run ``work`` (a rendering within the limits it is given) on the event loop while it is
        small, else in a worker thread within :data:`TEMPLATE_LIMITS`.

        ``inline`` says whether to try on the loop first: never for a template that came with the
        request, which could hold the loop for as long as its limits allow.
        """
        if inline:
            try:
                return work(INLINE_LIMITS)
            except PromptLimit:
                pass  # a heavy one: again, off the loop, within the full limits
            except PromptError as exc:
                raise BadRequest(str(exc)) from None
        try:
            return await asyncio.to_thread(work, TEMPLATE_LIMITS)
        except PromptError as exc:
            raise BadRequest(str(exc)) from None

    async def prompt_tokens(
        self, loaded: Loaded, text: str, context: list[int] | None, num_keep: int
    ) -> list[int]:
        """``text`` tokenized after ``context`` and fitted to the context; a long one off the event loop."""
        if len(text) < OFF_LOOP_CHARS:
            return self.fit(loaded, self.tokenize(loaded, text, context), num_keep)

        def fitted() -> list[int]:
            return self.fit(loaded, self.tokenize(loaded, text, context), num_keep)

        return await asyncio.to_thread(fitted)

    @staticmethod
    def check_context(loaded: Loaded, context: list[int] | None) -> None:
        """``context`` (the tokens of an earlier answer) holds only the model's own token ids.

        Another id would make llama.cpp refuse the decode it is in.
        """
        if not context:
            return
        n_vocab = loaded.runner.model.n_vocab
        low, high = min(context), max(context)
        if low < 0 or high >= n_vocab:
            bad = low if low < 0 else high
            raise BadRequest(
                f"context holds token {bad}, which is not a token of this model (0 to {n_vocab - 1})"
            )

    def tokenize(self, loaded: Loaded, text: str, context: list[int] | None = None) -> list[int]:
        """Tokenize a rendered prompt (after ``context`` tokens from an earlier response)."""
        llama = loaded.runner.model
        bos_text = llama.token_text(llama.bos) if llama.add_bos else ""
        add_special = not context and not (bos_text and text.startswith(bos_text))
        return (context or []) + llama.tokenize(text, add_special=add_special)

    def fit(self, loaded: Loaded, tokens: list[int], num_keep: int) -> list[int]:
        """Cut an over-long prompt the way Ollama's runner does: keep ``num_keep``, drop half the rest."""
        n_ctx = loaded.runner.n_ctx
        if len(tokens) < n_ctx:
            return tokens
        keep = min(max(num_keep, 0), n_ctx // 2)
        discard = (n_ctx - keep) // 2
        tail = n_ctx - keep - discard
        log.warning(
            "truncating input prompt: %d tokens, context %d, keeping %d", len(tokens), n_ctx, keep + tail
        )
        return tokens[:keep] + tokens[-tail:]

    async def chat_tokens(
        self,
        loaded: Loaded,
        builder: PromptBuilder,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        num_keep: int,
    ) -> list[int]:
        """A chat's prompt tokens (see :meth:`fit_chat`); a long chat is rendered off the event loop."""
        size = sum(len(str(m.get("content") or "")) for m in messages)
        work = functools.partial(self.fit_chat, loaded, builder, messages, tools, num_keep)
        return await self.render(work, inline=size < OFF_LOOP_CHARS)

    def fit_chat(
        self,
        loaded: Loaded,
        builder: PromptBuilder,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        num_keep: int,
        limits: Limits = TEMPLATE_LIMITS,
    ) -> list[int]:
        """Render a chat; if it does not fit, drop the oldest turns (system messages stay), as Ollama does.

        Fewer turns never make a longer prompt, so the first turn to keep is found by bisection:
        a long conversation is rendered a few times, not once per turn dropped.
        """
        n_ctx = loaded.runner.n_ctx

        def tokens_from(start: int) -> list[int]:
            window = [m for i, m in enumerate(messages) if i >= start or m.get("role") == "system"]
            return self.tokenize(loaded, builder.chat(window, tools, limits))

        tokens = tokens_from(0)
        if len(tokens) < n_ctx:
            return tokens
        last = len(messages) - 1  # the last message always stays
        low, high = 1, last
        fitting: tuple[int, list[int]] | None = None
        while low <= high:
            middle = (low + high) // 2
            candidate = tokens_from(middle)
            if len(candidate) < n_ctx:
                fitting, high = (middle, candidate), middle - 1
            else:
                low = middle + 1
        if fitting is None:
            return self.fit(loaded, tokens_from(max(last, 0)), num_keep)
        start, tokens = fitting
        log.warning("dropped the %d oldest messages to fit the context of %d", start, n_ctx)
        return tokens

    def run(self, gen: Generation, loaded: Loaded, prompt: list[int]) -> AsyncIterator[Text | Done]:
        # The manager's stream itself, not a generator around it: one layer less for every token.
        return self.manager.generate(
            loaded,
            prompt,
            SamplingParams.from_options(gen.options),
            num_predict=gen.num_predict,
            stop=gen.stop,
            grammar=gen.grammar,
            num_keep=gen.num_keep,
            fill_context=gen.fill_context,
        )
