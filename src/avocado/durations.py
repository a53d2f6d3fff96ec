"""Ollama-style durations: ``"5m"``, ``"1h30m"``, ``"300ms"``, seconds, or negative for forever."""

from __future__ import annotations

import math
import re

__all__ = ["DurationError", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    """A duration could not be understood."""


def parse_duration(value: str | float | int | None, default: float | None = None) -> float | None:
    """Return seconds, ``math.inf`` for a negative duration (keep forever), or ``default`` for ``None``.

    Numbers are seconds, as in Ollama's ``keep_alive``; strings follow Go's ``time.ParseDuration``.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        raise DurationError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value != value:
            raise DurationError("invalid duration NaN")
        return math.inf if value < 0 else float(value)
    text = value.strip()
    if not text:
        return default
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return parse_duration(number)
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    pos, total = 0, 0.0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match:
            raise DurationError(f'invalid duration "{value}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise DurationError(f'invalid duration "{value}"')
    return math.inf if sign < 0 else total
