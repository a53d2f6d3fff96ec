"""Errors raised by the inference engine; the API maps them to HTTP statuses."""

from __future__ import annotations

__all__ = ["EngineError", "ModelLoadError", "ModelTooLarge", "QueueFull"]


class EngineError(Exception):
    """Inference failed."""


class ModelLoadError(EngineError):
    """llama.cpp could not load a model or create its context."""


class ModelTooLarge(EngineError):
    """A model would not fit the memory this node may use, even alone."""


class QueueFull(EngineError):
    """Too many requests are waiting for one model."""
