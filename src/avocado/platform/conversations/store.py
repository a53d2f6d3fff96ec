"""What the conversations' database code shares: the tables, whose a conversation is, a message as the
API shows it, and walking a path up the message tree (a recursive query that stops early)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Row, Select, Table, literal, select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.errors import NoSuchConversation, NoSuchMessage
from avocado.platform.conversations.models import Conversation, Message
from avocado.platform.conversations.schemas import MessagePublic
from avocado.platform.feedback.schemas import FeedbackPublic

if TYPE_CHECKING:  # history imports MAX_WALK from here
    from avocado.platform.conversations.history import PathCache

__all__ = ["CONVERSATIONS", "MAX_WALK", "MESSAGES", "Store", "message_public", "read_path"]

MAX_WALK = 100_000  # steps up a path; a guard, far above any real conversation
MESSAGES = cast(Table, Message.__table__)
CONVERSATIONS = cast(Table, Conversation.__table__)


def message_public(
    row: Message | Row[Any],
    siblings: list[str] | None = None,
    in_context: bool = True,
    feedback: FeedbackPublic | None = None,
) -> MessagePublic:
    return MessagePublic(
        id=row.id,
        parent_id=row.parent_id,
        role=row.role,
        content=row.content,
        model=row.model,
        status=row.status,  # type: ignore[arg-type]
        error=row.error,
        done_reason=row.done_reason,
        usage=row.usage,
        created_at=row.created_at,
        siblings=siblings if siblings is not None else [row.id],
        in_context=in_context,
        feedback=feedback,
    )


def _path_ids(start: str, steps: int) -> Select[tuple[str, int]]:
    """Ids up the tree from ``start`` (itself first), at most ``steps`` of them, with their rank."""
    base = select(Message.id, Message.parent_id, literal(1).label("n")).where(Message.id == start)
    path = base.cte("path", recursive=True)
    up = select(Message.id, Message.parent_id, (path.c.n + 1).label("n")).join(
        path, Message.id == path.c.parent_id
    )
    path = path.union_all(up.where(path.c.n < steps))
    return select(path.c.id, path.c.n)


def read_path(session: Session, start: str | None, steps: int) -> list[Message]:
    """The messages up from ``start`` (at most ``steps``), oldest first."""
    if start is None:
        return []
    ids = _path_ids(start, steps).subquery()
    rows = session.execute(select(Message, ids.c.n).join(ids, Message.id == ids.c.id))
    return [message for message, _ in sorted(rows, key=lambda pair: -pair[1])]


class Store:
    """Synchronous database work on conversations (routes call it in a thread). Every method that takes
    the caller's id answers :class:`NoSuchConversation` for a conversation that is not theirs, as for
    one that does not exist."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: Callable[[], datetime] = utcnow,
        paths: PathCache | None = None,
    ) -> None:
        self._sessions = sessions
        self.now = now
        self._paths = paths  # the ends of paths kept in memory (sending)

    def _owned(self, session: Session, user_id: str, conversation_id: str) -> Conversation:
        row = session.get(Conversation, conversation_id)
        if row is None or row.user_id != user_id:
            raise NoSuchConversation()
        return row

    def _message(self, session: Session, conversation_id: str, message_id: str) -> Message:
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation_id:
            raise NoSuchMessage()
        return message
