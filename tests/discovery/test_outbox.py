"""The outbox keeps announcements in order, on disk, until they are confirmed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pydantic
import pytest

from avocado.discovery import Outbox
from avocado.discovery.messages import utc_now


def fields(url: str = "http://a.test", **changes: Any) -> dict[str, Any]:
    now = utc_now()
    data: dict[str, Any] = {
        "service_id": "node-a",
        "url": url,
        "status": "online",
        "version": "0.1.0",
        "started_at": now,
        "timestamp": now,
        "ttl_seconds": 90,
    }
    data.update(changes)
    return data


def test_sequences_rise_and_pending_keeps_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        added = [outbox.add(fields(f"http://{n}.test")) for n in range(5)]
        assert [a.sequence for a in added] == [1, 2, 3, 4, 5]
        assert outbox.pending() == added
        assert outbox.pending(limit=2) == added[:2]
        assert outbox.count() == 5
        assert outbox.last_sequence == 5
        assert outbox.last() == added[-1]


def test_confirm_removes_only_that_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        added = [outbox.add(fields()) for _ in range(3)]
        outbox.confirm(2)
        assert [a.sequence for a in outbox.pending()] == [1, 3]
        outbox.confirm(1)
        outbox.confirm(3)
        outbox.confirm(3)  # twice is harmless
        assert outbox.pending() == [] and outbox.count() == 0
        assert outbox.last() == added[-1]  # the last announcement is remembered after confirmation


def test_pending_rows_and_the_sequence_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite3"
    first = Outbox(path)
    for n in range(3):
        first.add(fields(f"http://{n}.test"))
    first.confirm(1)
    first.close()  # the process ends

    with Outbox(path) as second:
        assert [a.sequence for a in second.pending()] == [2, 3]
        assert second.add(fields()).sequence == 4
        second.confirm(2)
        second.confirm(3)
        second.confirm(4)
    with Outbox(path) as third:  # even when nothing was pending, the next sequence goes on
        assert third.add(fields()).sequence == 5


def test_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_invalid_announcement_takes_no_sequence(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        with pytest.raises(pydantic.ValidationError):
            outbox.add(fields(status="asleep"))
        assert outbox.count() == 0
        assert outbox.add(fields()).sequence == 1
