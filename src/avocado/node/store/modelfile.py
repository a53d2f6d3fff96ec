"""Ollama Modelfiles: parse them, write them back, and format parameters as ``/api/show`` does.

A Modelfile is a list of instructions, one per line, case-insensitive::

    # a comment
    FROM smollm2:135m
    PARAMETER temperature 0.7
    PARAMETER stop "<|im_end|>"
    SYSTEM \"\"\"You are
    a helpful assistant.\"\"\"
    MESSAGE user Hello

An argument is the rest of the line (trimmed), a ``"double quoted"`` string (which may span lines
and understands ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and ``\\r``; any other backslash is kept as is), or a
``\"\"\"triple quoted\"\"\"`` string taken verbatim.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from avocado.node.options import OptionError, coerce_option
from avocado.node.templates.gotemplate import format_value

__all__ = ["MESSAGE_ROLES", "Modelfile", "ModelfileError", "format_parameters", "parse_modelfile"]

MESSAGE_ROLES = ("system", "user", "assistant", "tool")

_INSTRUCTIONS = frozenset({"from", "parameter", "template", "system", "adapter", "license", "message"})
_BLANK = " \t"
_WORD_RE = re.compile(r"[A-Za-z]+")
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_]+")
_TRIPLE_END_RE = re.compile(r'"""[ \t]*(?=\n|$)')
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


class ModelfileError(ValueError):
    """A Modelfile could not be parsed; the message names the line."""


@dataclass
class Modelfile:
    """The instructions of a Modelfile. ``parameters`` holds coerced values; ``stop`` is a list."""

    from_: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)

    def to_text(self) -> str:
        """Render back to Modelfile text that :func:`parse_modelfile` reads to an equal Modelfile."""
        lines: list[str] = []
        if self.from_ is not None:
            lines.append(f"FROM {_quote_bare(self.from_)}")
        lines.extend(f"ADAPTER {_quote_bare(adapter)}" for adapter in self.adapters)
        if self.template is not None:
            lines.append(f"TEMPLATE {_quote_block(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {_quote_block(self.system)}")
        for name, value in self.parameters.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {name} {_quote_bare(_parameter_text(item))}")
        for message in self.messages:
            lines.append(f"MESSAGE {message['role']} {_quote_block(message['content'])}")
        lines.extend(f"LICENSE {_quote_block(license_)}" for license_ in self.licenses)
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly through float()
    return str(value)


def _quote_double(text: str) -> str:
    for char, escape in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(char, escape)
    return f'"{text}"'


def _quote_bare(text: str) -> str:
    """Leave a one-line value bare when it reads back unchanged; otherwise double-quote it."""
    if (
        text
        and text == text.strip(_BLANK)
        and not any(ch in text for ch in "\n\r")
        and not text.startswith('"')
        and "\\" not in text
    ):
        return text
    return _quote_double(text)


def _quote_block(text: str) -> str:
    """Triple-quote text (kept verbatim) unless it would not read back unchanged; then double-quote it."""
    match = _TRIPLE_END_RE.search(text + '"""')
    if match is not None and match.start() == len(text) and "\r" not in text:
        return f'"""{text}"""'
    return _quote_double(text)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


class _Reader:
    """A cursor over Modelfile text that knows its line number."""

    def __init__(self, text: str) -> None:
        self.text = text.replace("\r\n", "\n").removeprefix("\ufeff")
        self.pos = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def error(self, msg: str, line: int | None = None) -> ModelfileError:
        return ModelfileError(f"line {line or self.line}: {msg}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_blank(self) -> None:
        while self.peek() and self.peek() in _BLANK:
            self.pos += 1

    def skip_to_instruction(self) -> None:
        """Skip blank lines and comment lines."""
        while not self.at_end():
            ch = self.peek()
            if ch in " \t\n":
                self.pos += 1
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def word(self, pattern: re.Pattern[str], what: str) -> str:
        """Read a word followed by blanks; the word must be followed by an argument on the same line."""
        match = pattern.match(self.text, self.pos)
        if match is None:
            end = self.text.find("\n", self.pos)
            found = self.text[self.pos : len(self.text) if end < 0 else end].split(maxsplit=1)
            raise self.error(f"expected {what}, found {found[0]!r}" if found else f"missing {what}")
        self.pos = match.end()
        if self.peek() not in (" ", "\t"):
            raise self.error(f"missing argument after {match.group()!r}")
        self.skip_blank()
        return match.group()

    def argument(self) -> str:
        """Read a bare, double-quoted or triple-quoted argument and the rest of its line."""
        line = self.line
        if self.text.startswith('"""', self.pos):
            match = _TRIPLE_END_RE.search(self.text, self.pos + 3)
            if match is None:
                raise self.error('unterminated """ string', line)
            value = self.text[self.pos + 3 : match.start()]
            self.pos = match.end()
            return value
        if self.peek() == '"':
            value = self._double_quoted(line)
            self.skip_blank()
            if self.peek() not in ("", "\n"):
                raise self.error("unexpected text after closing quote")
            return value
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        value = self.text[self.pos : end].strip(_BLANK)
        self.pos = end
        if not value:
            raise self.error("missing argument", line)
        return value

    def _double_quoted(self, line: int) -> str:
        out: list[str] = []
        pos = self.pos + 1
        text = self.text
        while pos < len(text):
            ch = text[pos]
            if ch == '"':
                self.pos = pos + 1
                return "".join(out)
            if ch == "\\" and pos + 1 < len(text) and text[pos + 1] in _ESCAPES:
                out.append(_ESCAPES[text[pos + 1]])
                pos += 2
                continue
            out.append(ch)
            pos += 1
        raise self.error("unterminated quoted string", line)


def _add_parameter(model: Modelfile, name: str, value: str, line: int) -> None:
    try:
        coerced = coerce_option(name, value)
    except OptionError as exc:
        raise ModelfileError(f"line {line}: {exc}") from None
    if isinstance(coerced, list):
        model.parameters.setdefault(name, []).extend(coerced)
    else:
        model.parameters[name] = coerced


def _apply(model: Modelfile, instruction: str, reader: _Reader, line: int) -> None:
    if instruction == "parameter":
        name = reader.word(_PARAM_NAME_RE, "a parameter name")
        _add_parameter(model, name, reader.argument(), line)
    elif instruction == "message":
        role = reader.word(_WORD_RE, "a message role")
        if role not in MESSAGE_ROLES:
            raise ModelfileError(
                f"line {line}: message role must be one of {', '.join(MESSAGE_ROLES)}; got {role!r}"
            )
        model.messages.append({"role": role, "content": reader.argument()})
    else:
        value = reader.argument()
        if instruction == "from":
            model.from_ = value
        elif instruction == "template":
            model.template = value
        elif instruction == "system":
            model.system = value
        elif instruction == "adapter":
            model.adapters.append(value)
        else:
            model.licenses.append(value)


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; raises :class:`ModelfileError` naming the offending line."""
    reader = _Reader(text)
    model = Modelfile()
    while True:
        reader.skip_to_instruction()
        if reader.at_end():
            break
        line = reader.line
        match = _WORD_RE.match(reader.text, reader.pos)
        if match is None or match.group().lower() not in _INSTRUCTIONS:
            word = reader.text[reader.pos :].split(maxsplit=1)[0]
            raise ModelfileError(f"line {line}: unknown instruction {word!r}")
        instruction = reader.word(_WORD_RE, "an instruction").lower()
        _apply(model, instruction, reader, line)
        reader.skip_blank()
        if reader.peek() not in ("", "\n"):
            raise reader.error("unexpected text after argument")
    if model.from_ is None:
        raise ModelfileError("no FROM line")
    return model


# --------------------------------------------------------------------------------------------------
# /api/show
# --------------------------------------------------------------------------------------------------


def format_parameters(params: dict[str, Any]) -> str:
    """Render parameters as Ollama's ``/api/show`` ``parameters`` text: ``name`` padded to 30, value.

    Lists (``stop``) give one line per value; strings are quoted. Names are sorted for stable output.
    """
    lines: list[str] = []
    for name in sorted(params):
        value = params[name]
        for item in value if isinstance(value, list) else [value]:
            shown = json.dumps(item, ensure_ascii=False) if isinstance(item, str) else format_value(item)
            lines.append(f"{name:<30} {shown}")
    return "\n".join(lines)
