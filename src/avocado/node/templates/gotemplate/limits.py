"""Bounds on one rendering, so that a template cannot take the process's memory or time.

A template is a program: ``{{ range 1000000000 }}`` loops a billion times, and a variable doubled
in a loop (``{{ $x = print $x $x }}``) outgrows any memory in a few dozen rounds. Go's own
``text/template`` has no such bounds; a server that renders templates it was sent needs them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import LimitExceeded

__all__ = ["Budget", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one rendering may use: ``range`` iterations (nested ones all count), characters of
    output or of any one value it makes, and seconds."""

    iterations: int = 100_000
    output: int = 64 << 20
    seconds: float = 5.0


class Budget:
    """A rendering's account against its :class:`Limits`; each charge raises once one is spent."""

    __slots__ = ("_deadline", "_iterations", "_output", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._iterations = limits.iterations
        self._output = limits.output
        self._deadline = time.monotonic() + limits.seconds

    def iteration(self) -> None:
        """One more turn of a ``range`` loop (the only way a template repeats work)."""
        self._iterations -= 1
        if self._iterations < 0:
            raise LimitExceeded(
                "iterations", f"the template ran more than {self.limits.iterations} range iterations"
            )
        if time.monotonic() > self._deadline:
            raise LimitExceeded("seconds", f"the template took longer than {self.limits.seconds:g}s")

    def output(self, size: int) -> None:
        """``size`` more characters written out."""
        self._output -= size
        if self._output < 0:
            raise LimitExceeded("output", f"the template's output exceeded {self.limits.output} characters")

    def value(self, size: int) -> None:
        """A function made a string of ``size`` characters (a value can grow without being written)."""
        if size > self.limits.output:
            raise LimitExceeded("output", f"a value in the template exceeded {self.limits.output} characters")
