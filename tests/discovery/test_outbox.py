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
        added = [outbox.add(fields(f"http://{n}.test")) for n in range(3)]
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


STARTED = utc_now()


def node_a(url: str, **changes: Any) -> dict[str, Any]:
    """Fields of one run of node-a (one ``started_at``)."""
    return fields(url, started_at=STARTED, **changes)


def test_a_newer_announcement_of_the_same_state_supersedes_the_pending_one(tmp_path: Path) -> None:
    """Re-announcements pile up during an outage; only the newest of a run needs to go."""
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        for _ in range(3):
            outbox.add(node_a("http://a.test"))
        assert [a.sequence for a in outbox.pending()] == [3]
        outbox.add(node_a("http://b.test", previous_url="http://a.test"))
        outbox.add(node_a("http://b.test", previous_url="http://a.test"))
        outbox.add(node_a("http://b.test", previous_url="http://a.test", status="draining"))
        outbox.add(node_a("http://a.test", previous_url="http://b.test"))
        outbox.add(node_a("http://a.test", previous_url="http://b.test"))
        pending = outbox.pending()
        # Every change is still there, in order; each run of the same state is down to its newest.
        assert [(a.sequence, a.url, a.status) for a in pending] == [
            (3, "http://a.test", "online"),
            (5, "http://b.test", "online"),
            (6, "http://b.test", "draining"),
            (8, "http://a.test", "online"),
        ]
        assert outbox.last_sequence == 8 and outbox.count() == 4


def test_only_a_pending_announcement_is_superseded(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add(node_a("http://a.test"))
        outbox.confirm(1)  # the broker has it
        outbox.add(node_a("http://b.test"))
        outbox.add(node_a("http://a.test"))  # the same as 1, but 1 is gone and b came between
        assert [a.url for a in outbox.pending()] == ["http://b.test", "http://a.test"]
        outbox.add(node_a("http://a.test", models=[{"name": "m", "digest": "d", "size": 1}]))
        assert [a.sequence for a in outbox.pending()] == [2, 3, 4]  # the model list changed
