"""The turns a send reads up the tree from where it goes: by one recursive query that stops once the
model's context is full, or from the path this process kept when the conversation's last answer ended.

A long chat's send would otherwise walk a hundred rows up the tree again, one index lookup each, for
the turns it read the time before. When an answer ends, its conversation keeps in memory the end of its
path — the answer, my message and the turns sent with it, no more than the next send can need — and
the next send from that answer reads it there instead. A kept path is used only while the
conversation is as that end left it: the same leaf, ``updated_at`` and message count (every write that
changes a turn on a path moves ``updated_at``, on whichever replica: a send, an answer's end, an
answer continued) and a budget no larger. Anything else runs the query; the next end keeps again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from avocado.platform.conversations.store import MAX_WALK

__all__ = ["HISTORY", "Kept", "PathCache", "Seed", "Turned", "cover", "walk"]

# (id, parent_id, role, content, depth, tokens, status): a turn as the query reads it
Turned = tuple[str, str | None, str, str, int, int, str]

# The turns up from a message until their tokens (and ``extra``: a new message's, below it) pass the
# budget (one past it, to know), with their text: the query a send runs, written out so building it
# costs nothing. :func:`walk` answers the same from turns already read.
HISTORY = text(
    """
    WITH RECURSIVE path(id, parent_id, role, content, depth, tokens, status, used, n) AS (
        SELECT id, parent_id, role, content, depth, tokens, status, tokens + :extra, 1
        FROM messages WHERE id = :start
        UNION ALL
        SELECT m.id, m.parent_id, m.role, m.content, m.depth, m.tokens, m.status, path.used + m.tokens,
               path.n + 1
        FROM messages m JOIN path ON m.id = path.parent_id
        WHERE path.used <= :budget AND path.n < :steps
    )
    SELECT id, parent_id, role, content, depth, tokens, status FROM path ORDER BY depth
    """
)


def cover(up: Sequence[Turned], extra: int, budget: int, steps: int) -> list[Turned]:
    """The turns of ``up`` (newest first) that :data:`HISTORY` would read from its first: each while
    the tokens before it are within ``budget``, ``steps`` at most. Newest first."""
    used = extra
    taken: list[Turned] = []
    for turn in up:
        taken.append(turn)
        used += turn[5]
        if used > budget or len(taken) >= steps:
            break
    return taken


def walk(up: Sequence[Turned], extra: int, budget: int, steps: int) -> list[Turned]:
    """What :data:`HISTORY` answers (oldest first), from turns up from its start that cover it."""
    return cover(up, extra, budget, steps)[::-1]


@dataclass(frozen=True, slots=True)
class Seed:
    """What a send's first answer keeps of its path when it ends: the turns up from it (my message
    first when there is one), read with ``budget``, and the conversation as the send stored it."""

    conversation_id: str
    answer_id: str
    up: list[Turned]
    budget: int
    updated_at: datetime
    message_count: int


@dataclass(frozen=True, slots=True)
class Kept:
    """The end of a conversation's path, up from ``leaf_id`` (newest first), as it was stored."""

    leaf_id: str
    updated_at: datetime
    message_count: int
    budget: int
    up: tuple[Turned, ...]
    size: int  # characters held, for the cache's bound

    @classmethod
    def after(cls, seed: Seed, answer: Turned, now: datetime) -> Kept:
        """The path up from ``answer``, just ended at ``now`` after the send ``seed`` was read for:
        what the next send from it can read, no more."""
        up = tuple(cover([answer, *seed.up], 0, seed.budget, MAX_WALK))
        return cls(answer[0], now, seed.message_count, seed.budget, up, sum(len(turn[3]) for turn in up))


class PathCache:
    """The kept paths of the conversations last answered in this process (threads share it: sends are
    read and answers end in worker threads). Bounded by paths and by the characters they hold; the
    least recently used go first."""

    def __init__(self, max_paths: int = 2_000, max_chars: int = 32_000_000) -> None:
        self.max_paths = max_paths
        self.max_chars = max_chars
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def up(
        self, conversation_id: str, start: str, updated_at: datetime, message_count: int, budget: int
    ) -> tuple[Turned, ...] | None:
        """The turns up from ``start`` kept for this conversation in this state, or ``None``."""
        with self._lock:
            kept = self._kept.get(conversation_id)
            if kept is None:
                return None
            if (kept.leaf_id, kept.updated_at, kept.message_count) != (start, updated_at, message_count):
                return None
            if budget > kept.budget and kept.up[-1][1] is not None:  # may need turns not kept
                return None
            self._kept.move_to_end(conversation_id)
            return kept.up

    def keep(self, conversation_id: str, kept: Kept) -> None:
        with self._lock:
            self._drop(conversation_id)
            self._kept[conversation_id] = kept
            self._chars += kept.size
            while self._kept and (len(self._kept) > self.max_paths or self._chars > self.max_chars):
                self._drop(next(iter(self._kept)))

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            self._drop(conversation_id)

    def _drop(self, conversation_id: str) -> None:
        kept = self._kept.pop(conversation_id, None)
        if kept is not None:
            self._chars -= kept.size
