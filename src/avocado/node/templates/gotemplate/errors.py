"""Template errors: the public ``TemplateError`` and the internal errors raised while rendering."""

from __future__ import annotations


class TemplateError(ValueError):
    """A template failed to parse or to execute; the message names the line."""


class FuncError(Exception):
    """A builtin function rejected its arguments; the executor adds the line and function name."""


class ExecError(Exception):
    """An execution error not yet tagged with its line."""


class LimitExceeded(TemplateError):
    """A rendering went past one of its :class:`~.limits.Limits`; ``limit`` names which."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
