"""Helpers for the key tests: a clock to move by hand, and a service over the test database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["Clock"]


class Clock:
    """Both clocks a :class:`KeyService` reads (monotonic seconds and UTC now), moved by ``advance``."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)
