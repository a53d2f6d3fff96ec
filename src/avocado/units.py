"""Units people type: durations (``"5m"``, ``"-1"``, ``"30d"``) and sizes (``"8GB"``, ``"512MiB"``)."""

from __future__ import annotations

import math
import re

__all__ = [
    "DurationError",
    "SizeError",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
    "processor",
]

_DAY = 86400.0
_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": _DAY, "w": 7 * _DAY
}  # fmt: skip
_FOREVER = 1e300  # seconds: longer is kept forever (and a number too large for a float raises nothing)
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")


class DurationError(ValueError):
    """A duration could not be understood."""


def parse_duration(value: str | float | int | None, default: float | None = None) -> float | None:
    """Return seconds, ``math.inf`` for a negative duration (keep forever), or ``default`` for ``None``.

    Numbers are seconds, as in Ollama's ``keep_alive``; strings follow Go's ``time.ParseDuration``,
    with days (``d``) and weeks (``w``) besides, for lifetimes such as an API key's ``30d``.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        raise DurationError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value != value:
            raise DurationError("invalid duration NaN")
        if value < 0 or value > _FOREVER:  # an integer past a float's range is forever too
            return math.inf
        return float(value)
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


def format_duration(seconds: float) -> str:
    """A duration as Go writes it, to the millisecond: ``"20ms"``, ``"1.5s"``, ``"6m0s"``, ``"1h0m0s"``."""
    ms = round(max(0.0, seconds) * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


class SizeError(ValueError):
    """A size could not be understood."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.I)


def parse_size(value: str | int) -> int:
    """Bytes from ``"8GB"``, ``"512MiB"``, ``"2g"`` or a plain number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise SizeError(f'invalid size "{value}" (try "8GB" or "512MiB")')
    unit = (match.group(2) or "").upper()
    base = 1024 if "I" in unit else 1000
    power = "BKMGT".index(unit[0]) if unit else 0
    return int(float(match.group(1)) * base**power)


def format_size(size: int) -> str:
    """``1.5 GiB``-style text for messages."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def processor(size: int, size_vram: int) -> str:
    """Ollama's PROCESSOR column for a model of ``size`` bytes with ``size_vram`` on the GPUs."""
    if size_vram <= 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size:
        return "Unknown"
    cpu = round(100 * (size - size_vram) / size)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"
