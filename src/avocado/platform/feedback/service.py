"""Feedback in the database: one per user and answer (given again, it is replaced)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.errors import NoSuchConversation, NoSuchMessage
from avocado.platform.conversations.models import Conversation, Message
from avocado.platform.conversations.service import new_id
from avocado.platform.errors import NotFound
from avocado.platform.feedback.models import Feedback
from avocado.platform.feedback.schemas import FeedbackExport, FeedbackGiven, FeedbackPublic
from avocado.platform.pages import Page, decode_cursor, encode_cursor

__all__ = ["FeedbackService"]


def _public(row: Feedback) -> FeedbackPublic:
    return FeedbackPublic(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        rating=row.rating,  # type: ignore[arg-type]
        reason=row.reason,
        comment=row.comment,
        preferred=row.preferred,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _export(row: Feedback) -> FeedbackExport:
    return FeedbackExport(**_public(row).model_dump(), user_id=row.user_id, snapshot=row.snapshot)


class FeedbackService:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def _answer(self, session: Session, user_id: str, conversation_id: str, message_id: str) -> Message:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.user_id != user_id:
            raise NoSuchConversation()
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation_id or message.role != "assistant":
            raise NoSuchMessage()
        return message

    @staticmethod
    def _snapshot(session: Session, answer: Message, with_others: bool) -> dict[str, Any]:
        conversation = session.get(Conversation, answer.conversation_id)
        prompt = session.get(Message, answer.parent_id) if answer.parent_id else None
        snapshot: dict[str, Any] = {
            "model": answer.model,
            "system": conversation.system if conversation else None,
            "options": conversation.options if conversation else {},
            "prompt": prompt.content if prompt else None,
            "answer": answer.content,
            "usage": answer.usage,
        }
        if with_others and answer.parent_id is not None:
            others = session.scalars(
                select(Message).where(Message.parent_id == answer.parent_id, Message.id != answer.id)
            )
            snapshot["others"] = [{"id": m.id, "model": m.model, "answer": m.content} for m in others]
        return snapshot

    def give(
        self, user_id: str, conversation_id: str, message_id: str, given: FeedbackGiven
    ) -> FeedbackPublic:
        now = self.now()
        with self._sessions.begin() as session:
            answer = self._answer(session, user_id, conversation_id, message_id)
            snapshot = self._snapshot(session, answer, given.preferred)
            row = session.scalars(
                select(Feedback).where(Feedback.user_id == user_id, Feedback.message_id == message_id)
            ).first()
            if row is None:
                row = Feedback(
                    id=new_id(), user_id=user_id, conversation_id=conversation_id, message_id=message_id,
                    created_at=now,
                )  # fmt: skip
                session.add(row)
            row.rating, row.reason, row.comment = given.rating, given.reason or None, given.comment or None
            row.preferred, row.updated_at = given.preferred, now
            row.snapshot = snapshot
            session.flush()
            return _public(row)

    def _mine(self, session: Session, user_id: str, conversation_id: str, message_id: str) -> Feedback:
        self._answer(session, user_id, conversation_id, message_id)
        row = session.scalars(
            select(Feedback).where(Feedback.user_id == user_id, Feedback.message_id == message_id)
        ).first()
        if row is None:
            raise NotFound("no feedback on this answer")
        return row

    def get(self, user_id: str, conversation_id: str, message_id: str) -> FeedbackPublic:
        with self._sessions() as session:
            return _public(self._mine(session, user_id, conversation_id, message_id))

    def withdraw(self, user_id: str, conversation_id: str, message_id: str) -> None:
        with self._sessions.begin() as session:
            session.delete(self._mine(session, user_id, conversation_id, message_id))

    def page(self, rating: str | None, cursor: str | None, limit: int) -> Page[FeedbackExport]:
        """Everyone's, newest first (for the admin)."""
        query = select(Feedback).order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit + 1)
        if rating is not None:
            query = query.where(Feedback.rating == rating)
        if cursor is not None:
            (after,) = decode_cursor(cursor, (str,))
            with self._sessions() as session:
                last = session.get(Feedback, after)
            if last is not None:
                query = query.where(
                    (Feedback.created_at < last.created_at)
                    | ((Feedback.created_at == last.created_at) & (Feedback.id < last.id))
                )
        with self._sessions() as session:
            rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[_export(r) for r in rows], next_cursor=encode_cursor([rows[-1].id]) if more else None
        )

    def export(self, batch: int = 500) -> Iterator[FeedbackExport]:
        """Everyone's, oldest first, a batch at a time (the admin's JSON Lines export)."""
        after: tuple[datetime, str] | None = None
        while True:
            query = select(Feedback).order_by(Feedback.created_at, Feedback.id).limit(batch)
            if after is not None:
                query = query.where(
                    (Feedback.created_at > after[0])
                    | ((Feedback.created_at == after[0]) & (Feedback.id > after[1]))
                )
            with self._sessions() as session:
                rows = list(session.scalars(query))
            yield from (_export(row) for row in rows)
            if len(rows) < batch:
                return
            after = (rows[-1].created_at, rows[-1].id)
