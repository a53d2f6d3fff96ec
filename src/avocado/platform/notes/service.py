"""Notes in the database; another user's note is :class:`NoSuchNote`, as one that does not exist."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.errors import NoSuchConversation
from avocado.platform.conversations.models import Conversation
from avocado.platform.conversations.service import new_id
from avocado.platform.errors import NotFound
from avocado.platform.notes.models import Note
from avocado.platform.notes.schemas import NotePublic
from avocado.platform.pages import Page, time_cursor, time_keyset

__all__ = ["NoSuchNote", "NoteService"]


class NoSuchNote(NotFound):
    def __init__(self) -> None:
        super().__init__("no such note")


def _public(row: Note) -> NotePublic:
    return NotePublic(
        id=row.id,
        title=row.title,
        content=row.content,
        conversation_id=row.conversation_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class NoteService:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def _owned(self, session: Session, user_id: str, note_id: str) -> Note:
        row = session.get(Note, note_id)
        if row is None or row.user_id != user_id:
            raise NoSuchNote()
        return row

    @staticmethod
    def _check_conversation(session: Session, user_id: str, conversation_id: str | None) -> None:
        if conversation_id is None:
            return
        row = session.get(Conversation, conversation_id)
        if row is None or row.user_id != user_id:
            raise NoSuchConversation()

    def create(self, user_id: str, title: str, content: str, conversation_id: str | None) -> NotePublic:
        now = self.now()
        with self._sessions.begin() as session:
            self._check_conversation(session, user_id, conversation_id)
            row = Note(
                id=new_id(),
                user_id=user_id,
                conversation_id=conversation_id,
                title=title,
                content=content,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return _public(row)

    def get(self, user_id: str, note_id: str) -> NotePublic:
        with self._sessions() as session:
            return _public(self._owned(session, user_id, note_id))

    def update(self, user_id: str, note_id: str, changes: Mapping[str, Any]) -> NotePublic:
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, note_id)
            if "conversation_id" in changes:
                self._check_conversation(session, user_id, changes["conversation_id"])
                row.conversation_id = changes["conversation_id"]
            for name in ("title", "content"):
                if changes.get(name) is not None:
                    setattr(row, name, changes[name])
            row.updated_at = self.now()
            session.flush()
            return _public(row)

    def delete(self, user_id: str, note_id: str) -> None:
        with self._sessions.begin() as session:
            session.delete(self._owned(session, user_id, note_id))

    def page(
        self, user_id: str, conversation_id: str | None, cursor: str | None, limit: int
    ) -> Page[NotePublic]:
        """Mine, most recently changed first; those of one conversation with ``conversation_id``."""
        query = select(Note).where(Note.user_id == user_id)
        if conversation_id is not None:
            query = query.where(Note.conversation_id == conversation_id)
        if cursor is not None:
            query = query.where(time_keyset(cursor, Note.updated_at, Note.id))
        query = query.order_by(Note.updated_at.desc(), Note.id.desc()).limit(limit + 1)
        with self._sessions() as session:
            rows = list(session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = time_cursor(rows[-1].updated_at, rows[-1].id) if more else None
        return Page(items=[_public(row) for row in rows], next_cursor=next_cursor)
