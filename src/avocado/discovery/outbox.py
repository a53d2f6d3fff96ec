"""A durable outbox: announcements wait on disk (SQLite, WAL) until the broker confirms them.

Each :meth:`Outbox.add` gives the announcement the next ``sequence`` of this node and commits it
before returning, so the sequence keeps rising across restarts and nothing recorded is lost if the
process dies. Rows leave through :meth:`Outbox.confirm`, or when a newer announcement of the same
state supersedes them: a node re-announces itself every interval, and after a long outage only the
newest of a run of identical announcements is worth sending (a change of URL, status or models is
never superseded, so every state change still goes out, in order). :meth:`Outbox.pending` lists what
is left in sequence order. One connection, guarded by a lock, so any thread may use it; commits are
fsynced, so the :class:`~avocado.discovery.publisher.Announcer` calls it from a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from avocado.discovery.messages import (
    Announcement,
    InvalidAnnouncement,
    dump_announcement,
    parse_announcement,
)

__all__ = ["OUTBOX_FILE", "Outbox", "OutboxThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTBOX_FILE = "discovery-outbox.sqlite3"

_TABLES = """
CREATE TABLE IF NOT EXISTS outbox (sequence INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    """Announcements not yet confirmed by the broker, in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not only a crash
        self._db.executescript(_TABLES)

    def add(self, fields: Mapping[str, object]) -> Announcement:
        """Record an announcement made of ``fields`` (all but ``sequence``) under the next sequence.

        When the newest pending announcement says the same (it differs only in sequence and
        timestamp), the new one supersedes it: that row goes.
        """
        with self._transaction() as db:
            sequence = self._meta(db, "last_sequence", "0")
            announcement = Announcement.model_validate({**fields, "sequence": int(sequence) + 1})
            body = dump_announcement(announcement).decode()
            self._drop_if_same(db, announcement)
            db.execute("INSERT INTO outbox (sequence, body) VALUES (?, ?)", (announcement.sequence, body))
            self._set_meta(db, "last_sequence", str(announcement.sequence))
            self._set_meta(db, "last", body)
        return announcement

    def pending(self, limit: int | None = None) -> list[Announcement]:
        """Unconfirmed announcements, oldest (lowest sequence) first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sequence, body FROM outbox ORDER BY sequence LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        result = []
        for sequence, body in rows:
            try:
                result.append(parse_announcement(body))
            except (
                InvalidAnnouncement
            ) as exc:  # only if someone edited the file; never let it wedge the queue
                log.error("dropping unreadable outbox row %d from %s: %s", sequence, self.path, exc)
                self.confirm(sequence)
        return result

    def confirm(self, sequence: int) -> None:
        """The broker has the announcement ``sequence``: forget it."""
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE sequence = ?", (sequence,))

    def count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last announcement recorded (0 before the first)."""
        with self._lock:
            return int(self._meta(self._db, "last_sequence", "0"))

    def last(self) -> Announcement | None:
        """The last announcement recorded, confirmed or not (``None`` before the first)."""
        with self._lock:
            body = self._meta(self._db, "last", "")
        return Announcement.model_validate_json(body) if body else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_if_same(self, db: sqlite3.Connection, announcement: Announcement) -> None:
        row = db.execute("SELECT sequence, body FROM outbox ORDER BY sequence DESC LIMIT 1").fetchone()
        if row is None:
            return
        try:
            newest = parse_announcement(row[1])
        except InvalidAnnouncement:
            return  # pending() reports and drops it
        if _state(newest) == _state(announcement):
            db.execute("DELETE FROM outbox WHERE sequence = ?", (row[0],))
            log.debug("announcement %d supersedes pending %d", announcement.sequence, row[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str, default: str) -> str:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )


def _state(announcement: Announcement) -> dict[str, object]:
    """What an announcement says, as against when it was made and its place in the sequence."""
    return announcement.model_dump(exclude={"sequence", "timestamp"})


class OutboxThread:
    """An :class:`Outbox` used from the event loop: each call runs on one thread of its own, in order.

    SQLite commits are fsynced; none of that may stall the loop, and the order calls are made in is
    the order announcements get their sequences. ``pending`` and ``last_sequence`` are the outbox's
    counts as last seen on that thread, for status pages that must not wait for the disk.
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.pending = 0
        self.last_sequence = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="discovery-outbox")

    def submit(self, call: Callable[[Outbox], T]) -> asyncio.Future[T]:
        """Run ``call(outbox)`` after every call submitted before it; call from the event loop."""
        return asyncio.get_running_loop().run_in_executor(self._executor, self._run, call)

    async def shutdown(self) -> None:
        """Wait (off the loop) for what was submitted; nothing may be submitted after."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def _run(self, call: Callable[[Outbox], T]) -> T:
        try:
            return call(self.outbox)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.pending, self.last_sequence = self.outbox.count(), self.outbox.last_sequence
