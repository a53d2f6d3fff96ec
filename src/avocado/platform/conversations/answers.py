"""Answers being written, as the database keeps them: their text so far (a heartbeat too), their end,
the ones whose writer died, and what background jobs read and write about a conversation (its title,
the summary of what no longer fits the model's context).

Nothing here checks whose a message is: callers are the writer of an answer, the sweep and the jobs,
which act on ids the conversation service handed out after checking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import UtcDateTime, utcnow
from avocado.platform.conversations.context import counted, estimate
from avocado.platform.conversations.history import Kept, PathCache, Seed, Turned
from avocado.platform.conversations.models import Conversation, Message
from avocado.platform.conversations.schemas import MessagePublic
from avocado.platform.conversations.store import (
    CONVERSATIONS,
    MAX_WALK,
    MESSAGES,
    message_public,
    read_path,
)

__all__ = ["AnswerStore"]

FLUSH = text(
    "UPDATE messages SET content = :content, updated_at = :now WHERE id = :id AND status = 'generating'"
).bindparams(bindparam("now", type_=UtcDateTime()))


class AnswerStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: Callable[[], datetime] = utcnow,
        paths: PathCache | None = None,
    ) -> None:
        self._sessions = sessions
        self.now = now
        self._paths = paths

    def answer(self, message_id: str) -> MessagePublic | None:
        """An answer by id alone (for streams that already checked whose it is)."""
        with self._sessions() as session:
            row = session.get(Message, message_id)
            return message_public(row) if row is not None else None

    def flush(self, contents: Mapping[str, str]) -> set[str]:
        """Store the text so far of answers being written (their heartbeat too); which were asked
        to stop (or are gone, or were finished elsewhere)."""
        if not contents:
            return set()
        now = self.now()
        ids = list(contents)
        with self._sessions.begin() as session:
            rows = [{"id": mid, "content": content, "now": now} for mid, content in contents.items()]
            session.execute(FLUSH, rows)  # one statement, many rows: this runs twice a second
            alive = set(
                session.scalars(
                    select(Message.id).where(
                        Message.id.in_(ids), Message.status == "generating", Message.stop_requested.is_(False)
                    )
                )
            )
        return set(contents) - alive

    def finish(
        self,
        message_id: str,
        *,
        content: str,
        status: str,
        usage: dict[str, Any] | None = None,
        error: str | None = None,
        done_reason: str | None = None,
        prior_tokens: int = 0,
        seed: Seed | None = None,
    ) -> MessagePublic | None:
        """Store an answer's end; its tokens are what the model counted (on top of ``prior_tokens``
        for one continued), else an estimate. With the ``seed`` of its send, the conversation keeps
        its path in memory, when nothing else changed the conversation since the send."""
        count = counted((usage or {}).get("completion_tokens"))
        tokens = prior_tokens + count if count is not None else estimate(content)
        now = self.now()
        with self._sessions.begin() as session:
            ended = (
                update(MESSAGES)
                .where(MESSAGES.c.id == message_id)
                .values(
                    content=content,
                    status=status,
                    usage=usage,
                    error=error,
                    done_reason=done_reason,
                    tokens=int(tokens),
                    updated_at=now,
                )
            )
            if session.get_bind().dialect.update_returning:  # SQLite from 3.35, PostgreSQL
                row = session.execute(ended.returning(*MESSAGES.c)).first()
            else:
                session.execute(ended)
                row = session.execute(select(*MESSAGES.c).where(MESSAGES.c.id == message_id)).first()
            if row is None:
                return None
            version = self._touch(session, row.conversation_id, message_id, now, seed)
            public = message_public(row)
        if self._paths is not None:
            turn: Turned = (row.id, row.parent_id, row.role, row.content, row.depth, row.tokens, row.status)
            kept = Kept.after(seed, turn, version) if seed is not None and version is not None else None
            if kept is not None:
                self._paths.keep(row.conversation_id, kept)
            else:
                self._paths.forget(row.conversation_id)
        return public

    def _touch(
        self, session: Session, conversation_id: str, message_id: str, now: datetime, seed: Seed | None
    ) -> int | None:
        """Move the conversation on (its ``updated_at`` to ``now``, its version one up). Its new
        version when it was as the send ``seed`` was read for left it (this answer its leaf, its
        version the one that send stored), so that this answer's path may be kept; else ``None``."""
        touched = (
            update(CONVERSATIONS)
            .where(CONVERSATIONS.c.id == conversation_id)
            .values(updated_at=now, version=CONVERSATIONS.c.version + 1)
        )
        if seed is not None and seed.answer_id == message_id and self._paths is not None:
            unchanged = session.execute(
                touched.where(CONVERSATIONS.c.leaf_id == message_id, CONVERSATIONS.c.version == seed.version)
            ).rowcount  # type: ignore[attr-defined]
            if unchanged:
                return seed.version + 1
        session.execute(touched)
        return None

    def interrupt_stale(self, older_than: float, keep: Iterable[str] = ()) -> int:
        """Mark answers whose writer stopped beating ``interrupted`` (their text stays)."""
        before = self.now() - timedelta(seconds=older_than)
        with self._sessions.begin() as session:
            result = session.execute(
                update(Message)
                .where(
                    Message.status == "generating",
                    Message.updated_at < before,
                    Message.id.not_in(list(keep)),
                )
                .values(status="interrupted", error="the server writing it stopped")
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def transcript_before(self, conversation_id: str, message_id: str, depth: int) -> tuple[str, str] | None:
        """(model, the path above ``message_id`` before ``depth`` as text) to summarise."""
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            if row is None:
                return None
            path = [m for m in read_path(session, message_id, MAX_WALK) if m.depth < depth]
            lines = [f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in path if m.content]
            return row.model, "\n\n".join(lines)

    def set_summary(self, conversation_id: str, summary: str, depth: int) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(summary=summary, summary_depth=depth)
            )

    def first_exchange(self, conversation_id: str) -> tuple[str, str, str] | None:
        """(model, my first message, its first answer) while the title is still to be made."""
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            if row is None or row.title_source != "new":
                return None
            first = session.scalars(
                select(Message)
                .where(Message.conversation_id == row.id, Message.depth <= 1)
                .order_by(Message.depth, Message.created_at)
            ).all()
            question = next((m.content for m in first if m.role == "user"), "")
            answer = next((m.content for m in first if m.role == "assistant" and m.content), "")
            return (row.model, question, answer) if question else None

    def set_title(self, conversation_id: str, title: str) -> bool:
        """Set a made title unless the user named the conversation meanwhile."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.title_source == "new")
                .values(title=title, title_source="model")
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
