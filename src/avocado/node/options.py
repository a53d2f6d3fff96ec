"""Ollama's model options: names, types and validation, shared by the API and Modelfiles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OPTION_TYPES", "OptionError", "coerce_option", "options_schema", "validate_options"]


class OptionError(ValueError):
    """An option has an unknown name, the wrong type or a value out of range."""


# Option name -> Python type, as Ollama documents them (api.Options / api.Runner).
OPTION_TYPES: dict[str, type] = {
    # runner options (take effect when a model loads)
    "num_ctx": int,
    "num_batch": int,
    "num_gpu": int,
    "main_gpu": int,
    "use_mmap": bool,
    "num_thread": int,
    # sampling and prediction options (take effect per request)
    "num_keep": int,
    "seed": int,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "repeat_last_n": int,
    "temperature": float,
    "repeat_penalty": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "penalize_newline": bool,
    "mirostat": int,
    "mirostat_tau": float,
    "mirostat_eta": float,
    "tfs_z": float,
    "stop": list,
}

# Options that change how a model is loaded rather than how a request is sampled.
RUNNER_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread"})

# Bounds that keep a request from asking for something absurd; (min, max) inclusive.
_BOUNDS: dict[str, tuple[float, float]] = {
    "num_ctx": (1, 1 << 20),
    "num_batch": (1, 1 << 16),
    "num_thread": (0, 1024),
    "num_gpu": (-1, 1 << 16),  # layers; -1: as many as fit
    "main_gpu": (0, 1023),
    "num_keep": (-1, 1 << 20),
    "num_predict": (-2, 1 << 20),
    "top_k": (0, 1 << 20),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "typical_p": (0.0, 1.0),
    "repeat_last_n": (-1, 1 << 20),
    "temperature": (0.0, 100.0),
    "repeat_penalty": (0.0, 100.0),
    "presence_penalty": (-100.0, 100.0),
    "frequency_penalty": (-100.0, 100.0),
    "mirostat": (0, 2),
    "mirostat_tau": (0.0, 100.0),
    "mirostat_eta": (0.0, 100.0),
    "tfs_z": (0.0, 100.0),
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _shown(value: Any) -> str:
    """A value for an error message, cut short (a fuzzed number can have hundreds of digits)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_bounds(name: str, value: float) -> None:
    bounds = _BOUNDS.get(name)
    if bounds and not bounds[0] <= value <= bounds[1]:
        raise OptionError(f"option {name!r} must be between {bounds[0]} and {bounds[1]}, got {_shown(value)}")


def coerce_option(name: str, value: Any) -> Any:
    """Return ``value`` converted to the type of option ``name``.

    Accepts JSON values (from the API) and strings (from a Modelfile ``PARAMETER``).
    A ``stop`` given as a string becomes a one-element list.
    """
    kind = OPTION_TYPES.get(name)
    if kind is None:
        raise OptionError(f"unknown option {name!r}")
    if kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise OptionError(f"option {name!r} must be a string or a list of strings")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise OptionError(f"option {name!r} must be a boolean, got {value!r}")
    if isinstance(value, bool):
        raise OptionError(f"option {name!r} must be a number, got {value!r}")
    try:
        if kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
            converted: float = int(value)
        else:
            converted = float(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"option {name!r} must be {'an integer' if kind is int else 'a number'}, got {_shown(value)}"
        ) from None
    except OverflowError:  # an integer too large for a float: out of every option's range
        bounds = _BOUNDS.get(name)
        limits = f"between {bounds[0]} and {bounds[1]}" if bounds else "a number a float can hold"
        raise OptionError(f"option {name!r} must be {limits}, got {_shown(value)}") from None
    if converted != converted:  # NaN
        raise OptionError(f"option {name!r} must be a number, got NaN")
    _check_bounds(name, converted)
    return converted


def validate_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a whole options object from a request; ``None`` values are dropped.

    Unknown names are ignored, as Ollama does (clients send runner flags such as
    ``numa`` or ``use_mlock`` that mean nothing here); wrong types are errors.
    """
    if not options:
        return {}
    return {
        name: coerce_option(name, value)
        for name, value in options.items()
        if value is not None and name in OPTION_TYPES
    }


_JSON_TYPES = {int: "integer", float: "number", bool: "boolean"}


def options_schema() -> dict[str, Any]:
    """The options object in JSON Schema's words: each known option's type and bounds (``null``: unset);
    other names are ignored, so any may come along."""
    properties: dict[str, Any] = {}
    for name, kind in OPTION_TYPES.items():
        if kind is list:
            strings = {"type": "array", "items": {"type": "string"}}
            properties[name] = {"anyOf": [{"type": "string"}, strings, {"type": "null"}]}
            continue
        schema: dict[str, Any] = {"type": _JSON_TYPES[kind]}
        if name in _BOUNDS:
            schema["minimum"], schema["maximum"] = _BOUNDS[name]
        properties[name] = {"anyOf": [schema, {"type": "null"}]}
    return {"type": "object", "properties": properties, "description": "Model options, as Ollama's"}
