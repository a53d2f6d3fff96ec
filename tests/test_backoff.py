"""The one backoff the retry loops share (announcer, tunnel supervisor, ``ollama serve`` supervisor)."""

from __future__ import annotations

import random

import pytest

from avocado.backoff import Backoff


def test_backoff_doubles_up_to_its_cap_with_jitter_below() -> None:
    backoff = Backoff(first=1.0, maximum=8.0, jitter=0.25, rng=random.Random(7))
    delays = [backoff.next() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.75 * base <= delay <= base
    assert backoff.tries == 6
    backoff.reset()
    assert backoff.next() <= 1.0 and backoff.tries == 1
    with pytest.raises(ValueError):
        Backoff(first=2.0, maximum=1.0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


def test_days_of_failures_stay_at_the_cap() -> None:
    """A retry delay computed as first * 2**tries overflows a float after 1,024 tries (hours of outage)."""
    backoff = Backoff(first=0.5, maximum=10.0, jitter=0.5, rng=random.Random(1))
    delays = [backoff.next() for _ in range(100_000)]
    assert max(delays) <= 10.0 and min(delays[-1000:]) >= 5.0
    assert backoff.tries == 100_000


def test_without_jitter_the_delays_are_exact() -> None:
    backoff = Backoff(first=0.05, maximum=0.2, jitter=0)
    assert [backoff.next() for _ in range(5)] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert list(backoff.history) == [0.05, 0.1, 0.2, 0.2, 0.2]
