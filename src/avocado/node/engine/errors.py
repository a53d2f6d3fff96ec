"""Errors raised by the inference engine; the API maps them to HTTP statuses."""

from __future__ import annotations

__all__ = [
    "ContextTooLarge",
    "EngineError",
    "GrammarError",
    "InvalidRequest",
    "ModelLoadError",
    "ModelTooLarge",
    "QueueFull",
]


class EngineError(Exception):
    """Inference failed."""


class ModelLoadError(EngineError):
    """llama.cpp could not load a model or create its context."""


class InvalidRequest(EngineError):
    """The request cannot run as given (the client's mistake, HTTP 400)."""


class ModelTooLarge(EngineError):
    """A model would not fit the memory this node may use, even alone (the node's limit)."""


class ContextTooLarge(ModelTooLarge, InvalidRequest):
    """A model would fit the node's memory, but not with the context the request asks for."""


class QueueFull(EngineError):
    """Too many requests are waiting for one model."""


class GrammarError(InvalidRequest):
    """llama.cpp refused the grammar a request's format became (the request's fault)."""
