"""One node per home: an exclusive lock on ``AVOCADO_HOME/avocado.lock`` held while a node runs.

The lock is an ``flock`` on an open file, so the kernel releases it when the process ends however
it ends (a crash or ``kill -9`` leaves no stale lock behind). The file also says who holds it and
where that node listens, which is how ``avocado status`` finds the node serving a home.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

__all__ = ["Holder", "HomeInUse", "HomeLock", "read_holder"]

LOCK_NAME = "avocado.lock"


class HomeInUse(RuntimeError):
    """Another running process holds this home."""


@dataclass(frozen=True, slots=True)
class Holder:
    """The process that holds a home, and where it listens."""

    pid: int
    url: str
    started_at: str


class HomeLock:
    """Hold ``home``'s lock for the life of this object (``release`` or process exit ends it)."""

    def __init__(self, home: Path, holder: Holder) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / LOCK_NAME
        file = self.path.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            other = read_holder(home)
            where = f" (pid {other.pid}, {other.url})" if other else ""
            message = f"another avocado node is using {home}{where}; give this one its own --home"
            raise HomeInUse(message) from None
        self._file: IO[str] | None = file
        file.seek(0)
        file.truncate()
        file.write(json.dumps(asdict(holder)))
        file.flush()

    def release(self) -> None:
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(home: Path) -> Holder | None:
    """Who holds ``home``'s lock now, or ``None`` when no live process does."""
    path = home / LOCK_NAME
    try:
        file = path.open("r")
    except OSError:
        return None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: read what the holder wrote
        else:
            return None  # nobody holds it; whatever the file says is from a process that ended
        try:
            data = json.loads(file.read() or "null")
            holder = Holder(pid=int(data["pid"]), url=str(data["url"]), started_at=str(data["started_at"]))
        except (ValueError, TypeError, KeyError):
            return None
    return holder if _alive(holder.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
