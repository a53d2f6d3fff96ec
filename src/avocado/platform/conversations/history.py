"""The turns a send reads up the tree from where it goes: by one recursive query that stops once the
model's context is full, or from the path this process kept when the conversation's last answer ended.

A long chat's send would otherwise walk a hundred rows up the tree again, one index lookup each, for
the turns it read the time before. When an answer ends, its conversation keeps in memory the end of its
path — the answer, my message and the turns sent with it, no more than the next send can need — and
the next send from that answer reads it there instead. A kept path is used only while the
conversation is as that end left it: the same leaf and ``version`` (a counter every write that changes
a message on a path moves, on whichever replica: a send, an answer's end, an answer continued; an end
that finds it moved more than its own send moved it keeps nothing) and a budget no larger. Anything
else runs the query; the next end keeps again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from avocado.platform.conversations.store import MAX_WALK

__all__ = ["HISTORY", "Kept", "PathCache", "Seed", "Turned", "cover", "walk"]

TURN_COST = 400  # about the bytes a kept turn holds beside its text (a tuple, its id strings)

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
    first when there is one), read with ``budget``, and the conversation's version once stored."""

    conversation_id: str
    answer_id: str
    up: list[Turned]
    budget: int
    version: int


@dataclass(frozen=True, slots=True)
class Kept:
    """The end of a conversation's path, up from ``leaf_id`` (newest first), at ``version``."""

    leaf_id: str
    version: int
    budget: int
    up: tuple[Turned, ...]
    size: int  # about the bytes held, for the cache's bound

    @classmethod
    def after(cls, seed: Seed, answer: Turned, version: int) -> Kept | None:
        """The path up from ``answer``, just ended (the conversation now at ``version``) after the
        send ``seed`` was read for: what the next send from it can read, no more. ``None`` when the
        turns read do not cover it (a count below zero, as an old import could store)."""
        read = [answer, *seed.up]
        up = cover(read, 0, seed.budget, MAX_WALK)
        if len(up) == len(read) and up[-1][1] is not None and sum(turn[5] for turn in up) <= seed.budget:
            return None  # neither the root nor past the budget: a later walk could need more
        size = sum(len(turn[3]) + TURN_COST for turn in up)
        return cls(answer[0], version, seed.budget, tuple(up), size)


class PathCache:
    """The kept paths of the conversations last answered in this process (threads share it: sends are
    read and answers end in worker threads). Bounded by paths and by about the bytes they hold; the
    least recently used go first."""

    def __init__(self, max_paths: int = 2_000, max_bytes: int = 64_000_000) -> None:
        self.max_paths = max_paths
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def up(self, conversation_id: str, start: str, version: int, budget: int) -> tuple[Turned, ...] | None:
        """The turns up from ``start`` kept for this conversation at ``version``, or ``None``."""
        with self._lock:
            kept = self._kept.get(conversation_id)
            if kept is None:
                return None
            if kept.version != version:  # moved on for good
                self._drop(conversation_id)
                return None
            if kept.leaf_id != start or (budget > kept.budget and kept.up[-1][1] is not None):
                return None  # another branch; or a larger budget, which may need turns not kept
            self._kept.move_to_end(conversation_id)
            return kept.up

    def keep(self, conversation_id: str, kept: Kept) -> None:
        with self._lock:
            self._drop(conversation_id)
            if kept.size > self.max_bytes // 16:  # one conversation never takes the room of many
                return
            self._kept[conversation_id] = kept
            self._bytes += kept.size
            while len(self._kept) > self.max_paths or self._bytes > self.max_bytes:
                self._drop(next(iter(self._kept)))

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            self._drop(conversation_id)

    def _drop(self, conversation_id: str) -> None:
        kept = self._kept.pop(conversation_id, None)
        if kept is not None:
            self._bytes -= kept.size
