"""A durable outbox: announcements wait on disk (SQLite, WAL) until the broker confirms them.

Each :meth:`Outbox.add` gives the announcement the next ``sequence`` of this node and commits it
before returning, so the sequence keeps rising across restarts and nothing recorded is lost if the
process dies. Rows leave only through :meth:`Outbox.confirm`; :meth:`Outbox.pending` lists what is
left in sequence order. One connection, guarded by a lock, so any thread may use it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from avocado.discovery.messages import (
    Announcement,
    InvalidAnnouncement,
    dump_announcement,
    parse_announcement,
)

__all__ = ["OUTBOX_FILE", "Outbox"]

log = logging.getLogger(__name__)

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
        """Record an announcement made of ``fields`` (all but ``sequence``) under the next sequence."""
        with self._transaction() as db:
            sequence = self._meta(db, "last_sequence", "0")
            announcement = Announcement.model_validate({**fields, "sequence": int(sequence) + 1})
            body = dump_announcement(announcement).decode()
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
