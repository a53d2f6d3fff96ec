"""Streaming helpers on their own."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from avocado.node.api.streaming import now_iso


def test_now_iso_is_rfc3339_utc_with_microseconds_and_tracks_the_clock() -> None:
    before = datetime.now(UTC)
    stamps = [now_iso()]
    time.sleep(1.05)  # into the next second: the date and time part is formatted again
    stamps += [now_iso(), now_iso()]
    after = datetime.now(UTC)
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        assert before <= datetime.fromisoformat(stamp) <= after
    assert stamps == sorted(stamps) and stamps[0][:19] != stamps[1][:19]
