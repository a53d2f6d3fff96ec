"""The node's API keys while it runs: the current one, and replaced ones until their overlap ends.

A key is rotated with ``POST /api/avocado/credentials``: the new key is accepted at once, and every
key it replaces (the one in use, and any still in an earlier overlap) for at most
``previous_key_valid_for`` more, so that clients can move over without a failed request; then they
are refused. A rotation with no overlap (``"0"``) refuses every old key at once (a leaked key). A
request is checked when it arrives: one already running (a stream) is never cut by a rotation.

When the key in use is the one the node generated and keeps in the home (``state/api-key``, see
:mod:`avocado.node.access`), the new key replaces it there, so it is the key after a restart too. A
key given in the settings (``--api-key``, ``AVOCADO_API_KEY``, a config file) is not the node's to
rewrite: the answer says so.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path

from avocado.secret_file import replace_secret

__all__ = ["MAX_OVERLAP", "ApiKeys"]

log = logging.getLogger(__name__)

MAX_OVERLAP = 24 * 3600.0  # seconds an old key may go on working after a rotation


class ApiKeys:
    """The keys a node accepts: ``current``, and each replaced key until its deadline (``clock`` time)."""

    def __init__(self, key: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._current = key.encode()
        self._previous: dict[bytes, float] = {}  # a replaced key -> when it stops working
        self.clock = clock

    @property
    def current(self) -> str:
        return self._current.decode()

    def accepts(self, given: bytes) -> bool:
        """Whether ``given`` is the current key or a replaced one still in its overlap."""
        if hmac.compare_digest(given, self._current):
            return True
        now = self.clock()
        accepted = False
        for key, until in list(self._previous.items()):
            if until <= now:
                del self._previous[key]  # its overlap is over: forgotten, refused from now on
            elif hmac.compare_digest(given, key):
                accepted = True
        return accepted

    def replace(self, key: str, overlap: float) -> None:
        """Make ``key`` the current key; every key replaced works for at most ``overlap`` seconds more."""
        if not 0 <= overlap <= MAX_OVERLAP:
            raise ValueError(f"an overlap is between 0 and {MAX_OVERLAP:g} seconds")
        new = key.encode()
        until = self.clock() + overlap
        self._previous[self._current] = until
        self._previous = {old: min(deadline, until) for old, deadline in self._previous.items() if old != new}
        self._current = new

    def store(self, path: Path, replaced: str) -> bool:
        """Put the current key in ``path`` (the home's kept key) if it held ``replaced``; True if so."""
        try:
            stored = path.read_text().strip()
        except FileNotFoundError:
            return False
        if not hmac.compare_digest(stored.encode(), replaced.encode()):
            return False
        replace_secret(path, self.current)
        log.info("the new API key replaced the one kept in %s", path)
        return True
