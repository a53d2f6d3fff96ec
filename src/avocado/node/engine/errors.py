"""Errors raised by the inference engine; the API maps them to HTTP statuses."""

from __future__ import annotations

__all__ = ["ContextOverflow", "EngineError", "ModelLoadError", "QueueFull"]


class EngineError(Exception):
    """Inference failed."""


class ModelLoadError(EngineError):
    """llama.cpp could not load a model or create its context."""


class QueueFull(EngineError):
    """Too many requests are waiting for one model."""


class ContextOverflow(EngineError):
    """The input does not fit the context and may not be truncated."""
