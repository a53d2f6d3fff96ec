"""What of a conversation goes to the model: the system prompt and the newest turns that fit.

Tokens of a stored answer are what the model reported for it; other text is estimated (about four
characters a token, plus a few for the turn's template). When the path outgrows the budget, the
oldest turns are left out in whole blocks of :data:`BLOCK` messages counted from the root, so the
first message sent changes only once every few turns and the node's prompt cache keeps matching
between those jumps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BLOCK", "DEFAULT_CTX", "Turn", "budget_for", "counted", "estimate", "fit"]

BLOCK = 8  # messages; even, so a cut falls before a user's turn
DEFAULT_CTX = 4096  # a model's context when the conversation does not set num_ctx (Ollama's default)
TEMPLATE_TOKENS = 4  # the chat template's tokens around each turn
MAX_COUNT = 1 << 24  # more tokens than any model's context: a count past it is not believed


@dataclass(frozen=True, slots=True)
class Turn:
    id: str
    role: str
    content: str
    depth: int
    tokens: int


def estimate(text: str) -> int:
    """Tokens ``text`` likely takes in a turn, before the model has counted it."""
    return math.ceil(len(text) / 4) + TEMPLATE_TOKENS


def counted(count: object) -> int | None:
    """A count of tokens the model reported, when it is believable (an import may say anything)."""
    if isinstance(count, int) and not isinstance(count, bool) and 0 < count < MAX_COUNT:
        return count
    return None


def budget_for(options: Mapping[str, Any], system: str | None) -> int:
    """Tokens of history that fit: the context less the answer's room and the system prompt."""
    ctx = options.get("num_ctx") or DEFAULT_CTX
    room = options.get("num_predict")
    if not isinstance(room, int) or room <= 0:
        room = ctx // 4
    return max(ctx - min(room, ctx // 2) - (estimate(system) if system else 0), 0)


def fit(path: Sequence[Turn], budget: int) -> list[Turn]:
    """The newest turns of ``path`` (oldest first) that fit ``budget``, cut at a block boundary.

    The last turn (the new prompt) is always kept, even alone over budget: the model says so then.
    """
    if not path:
        return []
    used = 0
    first = len(path)
    for index in range(len(path) - 1, -1, -1):
        used += path[index].tokens
        if used > budget and index < len(path) - 1:
            break
        first = index
    if first == 0:
        return list(path)
    cut = math.ceil(path[first].depth / BLOCK) * BLOCK
    kept = [turn for turn in path[first:] if turn.depth >= cut]
    return kept or [path[-1]]
