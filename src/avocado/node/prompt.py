"""Turning requests into prompt text with a model's template, and reading tool calls back out.

Templates are Ollama's (Go ``text/template``). A model imported without one falls back to the
Jinja chat template in its GGUF, and failing that to ``{{ .Prompt }}``, as Ollama does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from avocado.node.store.store import Model
from avocado.node.templates.gotemplate import GoTemplate, LimitExceeded, Limits, TemplateError

__all__ = ["MAX_TEMPLATE", "GoStruct", "PromptBuilder", "PromptError", "PromptLimit", "compile_template"]

DEFAULT_TEMPLATE = "{{ .Prompt }}"

# Model templates are a few kilobytes; parsing takes about 4 µs a character, and a parse tree many
# times the source's size, so a template (one sent with a request too) may be at most this long.
MAX_TEMPLATE = 64 << 10

# Parsing a template costs more than rendering it; models reuse a handful of templates.
_parse = functools.lru_cache(maxsize=128)(GoTemplate)


class PromptError(ValueError):
    """The model's template could not render this request."""


class PromptLimit(PromptError):
    """The template went past the limits of its rendering (:class:`Limits`)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def compile_template(source: str) -> GoTemplate:
    """A parsed template, from the cache when it was parsed before; :class:`PromptError` when it is
    too long or does not parse."""
    if len(source) > MAX_TEMPLATE:
        raise PromptError(f"template error: the template is {len(source)} characters, at most {MAX_TEMPLATE}")
    try:
        return _parse(source)
    except TemplateError as exc:
        raise PromptError(f"template error: {exc}") from None


class GoStruct(dict[str, Any]):
    """JSON-shaped data that Go templates can read by field name (``.ToolCalls`` -> ``tool_calls``).

    The dict holds the JSON form, so ``{{ .Function | json }}`` prints what Ollama's Go structs
    marshal to, while ``.Function.Name`` finds ``name``.
    """

    def _key(self, key: str) -> str:
        if dict.__contains__(self, key):
            return key
        return _snake(key)

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, self._key(key), default)

    @classmethod
    def wrap(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.wrap(v) for v in value]
        return value


class PromptBuilder:
    """Renders prompts for one model."""

    def __init__(self, model: Model, override: str | None = None, *, bos: str = "", eos: str = "") -> None:
        self.model = model
        self.bos, self.eos = bos, eos  # token texts, for Jinja templates that print them
        self.jinja: str | None = None
        source = override or model.template
        if not source and model.info.chat_template:
            self.jinja = model.info.chat_template
            source = None
        self.template = compile_template(source or DEFAULT_TEMPLATE)

    @property
    def supports_tools(self) -> bool:
        if self.jinja is not None:
            return "tools" in self.jinja
        return self.template.references("Tools")

    @property
    def supports_insert(self) -> bool:
        return self.jinja is None and self.template.references("Suffix")

    @property
    def uses_messages(self) -> bool:
        return self.jinja is not None or self.template.references("Messages")

    def capabilities(self) -> list[str]:
        caps = ["completion"]
        if self.supports_tools:
            caps.append("tools")
        if self.supports_insert:
            caps.append("insert")

        return caps

    def chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        limits: Limits = Limits(),
    ) -> str:
        """Render a conversation; the model's own MESSAGEs and SYSTEM come first, as in Ollama.

        A Go template renders within ``limits`` (:class:`PromptLimit` past them).
        """
        history = list(self.model.messages) + messages
        if self.model.system and not any(m.get("role") == "system" for m in history):
            history.insert(0, {"role": "system", "content": self.model.system})
        system = "\n\n".join(m.get("content") or "" for m in history if m.get("role") == "system")
        if self.jinja is not None:
            return self._render_jinja(history, tools)
        prompt = ""
        if not self.uses_messages:  # an old-style template: .System/.Prompt for the last turn
            user = [m for m in history if m.get("role") == "user"]
            prompt = (user[-1].get("content") or "") if user else ""
        data = {
            "System": system,
            "Prompt": prompt,
            "Response": "",
            "Suffix": "",
            "Messages": GoStruct.wrap(history),
            "Tools": GoStruct.wrap(tools or []),
        }
        return self._render(data, limits)

    def generate(
        self, prompt: str, system: str | None, suffix: str | None = None, limits: Limits = Limits()
    ) -> str:
        """Render ``/api/generate``: .Prompt/.System/.Suffix, plus the same as .Messages."""
        system = system if system is not None else self.model.system
        messages: list[dict[str, Any]] = list(self.model.messages)
        if system:
            messages.insert(0, {"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        if self.jinja is not None:
            return self._render_jinja(messages, None)
        data = {
            "System": system or "",
            "Prompt": prompt,
            "Suffix": suffix or "",
            "Response": "",
            "Messages": GoStruct.wrap(messages),
            "Tools": [],
        }
        return self._render(data, limits)

    def _render(self, data: dict[str, Any], limits: Limits) -> str:
        try:
            return self.template.render(data, limits)
        except LimitExceeded as exc:
            raise PromptLimit(f"template error: {exc}") from None
        except TemplateError as exc:
            raise PromptError(f"template error: {exc}") from None

    def _render_jinja(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message: str) -> None:
            raise JinjaError(message)

        env.globals["raise_exception"] = raise_exception
        try:
            return env.from_string(self.jinja or "").render(
                messages=messages,
                tools=tools,
                add_generation_prompt=True,
                bos_token=self.bos,
                eos_token=self.eos,
            )
        except JinjaError as exc:
            raise PromptError(f"chat template error: {exc}") from None
