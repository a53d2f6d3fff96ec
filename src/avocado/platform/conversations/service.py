"""Conversations and their messages in the database (synchronous; routes call it in a thread): the
conversations themselves, reading a path of their message tree (a page of it, with each message's
siblings and my feedback), branches and forks; sending lives in :mod:`sending`.

Every method takes the caller's id and answers :class:`NoSuchConversation` for a conversation that is
not theirs, as for one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from avocado.platform.conversations.errors import (
    AnswerFinished,
    NoSuchMessage,
)
from avocado.platform.conversations.folders import check_folder
from avocado.platform.conversations.models import Conversation, ConversationTag, Message, new_id
from avocado.platform.conversations.schemas import (
    ConversationDetail,
    ConversationPublic,
    MessagePublic,
)
from avocado.platform.conversations.sending import Sending
from avocado.platform.conversations.store import MAX_WALK, message_public, read_path
from avocado.platform.feedback.models import Feedback
from avocado.platform.feedback.schemas import FeedbackPublic
from avocado.platform.pages import Page, cursor_time, decode_cursor, encode_cursor

__all__ = ["ConversationService", "new_id"]

NEW_TITLE = "New chat"


def _conversation_public(row: Conversation, tags: list[str]) -> ConversationPublic:
    return ConversationPublic(
        id=row.id,
        title=row.title,
        model=row.model,
        system=row.system,
        options=row.options or {},
        summarise=row.summarise,
        summary=row.summary if row.summarise else None,
        folder_id=row.folder_id,
        pinned=row.pinned,
        archived=row.archived,
        tags=tags,
        message_count=row.message_count,
        leaf_id=row.leaf_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ConversationService(Sending):
    # -- conversations ------------------------------------------------------------------------------

    def _tags(self, session: Session, ids: Iterable[str]) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {}
        rows = session.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag)
            .where(ConversationTag.conversation_id.in_(list(ids)))
            .order_by(ConversationTag.tag)
        )
        for conversation_id, tag in rows:
            tags.setdefault(conversation_id, []).append(tag)
        return tags

    def _public(self, session: Session, row: Conversation) -> ConversationPublic:
        return _conversation_public(row, self._tags(session, [row.id]).get(row.id, []))

    def create(
        self,
        user_id: str,
        model: str,
        *,
        title: str | None = None,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        folder_id: str | None = None,
        summarise: bool = False,
    ) -> ConversationPublic:
        now = self.now()
        with self._sessions.begin() as session:
            check_folder(session, user_id, folder_id)
            row = Conversation(
                id=new_id(),
                user_id=user_id,
                folder_id=folder_id,
                title=title or NEW_TITLE,
                title_source="user" if title else "new",
                model=model,
                system=system,
                options=dict(options or {}),
                summarise=summarise,
                summary=None,
                summary_depth=None,
                leaf_id=None,
                message_count=0,
                pinned=False,
                archived=False,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return _conversation_public(row, [])

    def page(
        self,
        user_id: str,
        *,
        archived: bool = False,
        folder_id: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[ConversationPublic]:
        """Mine, pinned first, then the most recently active; ``archived`` ones apart."""
        query = select(Conversation).where(Conversation.user_id == user_id, Conversation.archived == archived)
        if folder_id is not None:
            query = query.where(Conversation.folder_id == folder_id)
        if tag is not None:
            tagged = select(ConversationTag.conversation_id).where(ConversationTag.tag == tag)
            query = query.where(Conversation.id.in_(tagged))
        if cursor is not None:
            pinned, at, after = decode_cursor(cursor, (int, str, str))
            when = cursor_time(at)
            later = or_(
                Conversation.updated_at < when, and_(Conversation.updated_at == when, Conversation.id < after)
            )
            same = and_(Conversation.pinned.is_(bool(pinned)), later)
            query = query.where(or_(same, Conversation.pinned.is_(False)) if pinned else same)
        query = query.order_by(
            Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id.desc()
        ).limit(limit + 1)
        with self._sessions() as session:
            rows = list(session.scalars(query))
            more = len(rows) > limit
            rows = rows[:limit]
            tags = self._tags(session, [row.id for row in rows])
            items = [_conversation_public(row, tags.get(row.id, [])) for row in rows]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = encode_cursor([int(last.pinned), last.updated_at.isoformat(), last.id])
        return Page(items=items, next_cursor=next_cursor)

    def get(self, user_id: str, conversation_id: str) -> ConversationPublic:
        with self._sessions() as session:
            return self._public(session, self._owned(session, user_id, conversation_id))

    def update(self, user_id: str, conversation_id: str, changes: Mapping[str, Any]) -> ConversationPublic:
        """Set the fields in ``changes`` (a renamed conversation keeps its title from then on)."""
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, conversation_id)
            for name, value in changes.items():
                if name == "tags":
                    self._set_tags(session, row.id, value or [])
                elif name == "title":
                    if value is None:
                        continue
                    row.title, row.title_source = value, "user"
                elif name == "folder_id":
                    check_folder(session, user_id, value)
                    row.folder_id = value
                elif name in ("model", "pinned", "archived", "summarise") and value is None:
                    continue
                else:
                    setattr(row, name, value)
            row.updated_at = (
                self.now() if set(changes) - {"pinned", "archived", "tags", "folder_id"} else row.updated_at
            )
            session.flush()
            return self._public(session, row)

    def _set_tags(self, session: Session, conversation_id: str, tags: list[str]) -> None:
        session.execute(delete(ConversationTag).where(ConversationTag.conversation_id == conversation_id))
        for tag in sorted({tag.lower() for tag in tags}):
            session.add(ConversationTag(conversation_id=conversation_id, tag=tag))

    def delete(self, user_id: str, conversation_id: str) -> None:
        with self._sessions.begin() as session:
            session.delete(self._owned(session, user_id, conversation_id))

    def archive_older(self, user_id: str, days: int) -> int:
        """Archive every conversation of mine not active for ``days`` days; how many were."""
        before = self.now() - timedelta(days=days)
        with self._sessions.begin() as session:
            result = session.execute(
                update(Conversation)
                .where(
                    Conversation.user_id == user_id,
                    Conversation.archived.is_(False),
                    Conversation.updated_at < before,
                )
                .values(archived=True)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- reading paths ------------------------------------------------------------------------------

    def _with_siblings(
        self, session: Session, user_id: str, conversation_id: str, path: list[Message]
    ) -> list[MessagePublic]:
        """The path as the API shows it: each message with its siblings' ids, whether it was in the
        model's context, my feedback on it, and the answers written beside it (a multi-model send).
        Three queries whatever the path's length (four with answers side by side)."""
        if not path:
            return []
        parents = {message.parent_id for message in path}
        query = select(Message.id, Message.parent_id, Message.send_id).where(
            Message.conversation_id == conversation_id
        )
        known = [parent for parent in parents if parent is not None]
        conditions = [Message.parent_id.in_(known)] if known else []
        if None in parents:
            conditions.append(Message.parent_id.is_(None))
        siblings: dict[str | None, list[str]] = {}
        sends: dict[str, list[str]] = {}  # a send to several models -> its answers
        for message_id, parent_id, send_id in session.execute(
            query.where(or_(*conditions)).order_by(Message.created_at, Message.id)
        ):
            siblings.setdefault(parent_id, []).append(message_id)
            if send_id is not None:
                sends.setdefault(send_id, []).append(message_id)
        on_path = [message.id for message in path]
        together = {  # an answer on the path -> the others its send wrote
            message.id: [other for other in sends[message.send_id] if other != message.id]
            for message in path
            if message.send_id is not None and message.send_id in sends
        }
        beside_ids = [other for others in together.values() for other in others]
        feedback = self._feedback(session, user_id, [*on_path, *beside_ids])
        beside_rows = (
            {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(beside_ids)))}
            if beside_ids
            else {}
        )
        cut = next(
            (
                m.context_depth
                for m in reversed(path)
                if m.role == "assistant" and m.context_depth is not None
            ),
            0,
        )
        shown = []
        for message in path:
            family = siblings.get(message.parent_id, [message.id])
            public = message_public(message, family, message.depth >= cut, feedback.get(message.id))
            others = together.get(message.id, [])
            picked = any(
                given.preferred for member in [message.id, *others] if (given := feedback.get(member))
            )
            if not picked:
                public.beside = [
                    message_public(beside_rows[other], family, public.in_context, feedback.get(other))
                    for other in others
                    if other in beside_rows
                ]
            shown.append(public)
        return shown

    @staticmethod
    def _feedback(session: Session, user_id: str, message_ids: list[str]) -> dict[str, FeedbackPublic]:
        """My feedback on these messages, in one query."""
        if not message_ids:
            return {}
        rows = session.scalars(
            select(Feedback).where(Feedback.user_id == user_id, Feedback.message_id.in_(message_ids))
        )
        return {row.message_id: FeedbackPublic.model_validate(row, from_attributes=True) for row in rows}

    def detail(self, user_id: str, conversation_id: str, limit: int = 200) -> ConversationDetail:
        """The conversation with the newest ``limit`` messages of its active path."""
        with self._sessions() as session:
            row = self._owned(session, user_id, conversation_id)
            path = read_path(session, row.leaf_id, limit + 1)
            more = len(path) > limit
            path = path[-limit:] if more else path
            messages = self._with_siblings(session, user_id, row.id, path)
            public = self._public(session, row)
        return ConversationDetail(**public.model_dump(), messages=messages, more_before=more)

    def older(self, user_id: str, conversation_id: str, before: str, limit: int = 200) -> list[MessagePublic]:
        """The ``limit`` messages of the path before message ``before`` (oldest first)."""
        with self._sessions() as session:
            self._owned(session, user_id, conversation_id)
            message = self._message(session, conversation_id, before)
            path = read_path(session, message.parent_id, limit)
            return self._with_siblings(session, user_id, conversation_id, path)

    def message(self, user_id: str, conversation_id: str, message_id: str) -> MessagePublic:
        with self._sessions() as session:
            self._owned(session, user_id, conversation_id)
            return message_public(self._message(session, conversation_id, message_id))

    # -- branches -----------------------------------------------------------------------------------

    def set_leaf(self, user_id: str, conversation_id: str, message_id: str) -> ConversationDetail:
        """Show the branch through ``message_id``: down from it along the newest replies to its end."""
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, conversation_id)
            leaf = self._message(session, row.id, message_id)
            for _ in range(MAX_WALK):
                child = session.scalars(
                    select(Message)
                    .where(Message.conversation_id == row.id, Message.parent_id == leaf.id)
                    .order_by(Message.created_at.desc(), Message.id.desc())
                    .limit(1)
                ).first()
                if child is None:
                    break
                leaf = child
            row.leaf_id = leaf.id
        return self.detail(user_id, conversation_id)

    def fork(self, user_id: str, conversation_id: str, message_id: str) -> ConversationPublic:
        """A new conversation holding the path from the root to ``message_id``."""
        now = self.now()
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, conversation_id)
            self._message(session, row.id, message_id)
            path = read_path(session, message_id, MAX_WALK)
            copy = Conversation(
                id=new_id(),
                user_id=user_id,
                folder_id=row.folder_id,
                title=f"{row.title} (fork)"[:300],
                title_source="user",
                model=row.model,
                system=row.system,
                options=dict(row.options or {}),
                summarise=row.summarise,
                summary=None,
                summary_depth=None,
                leaf_id=None,
                message_count=len(path),
                pinned=False,
                archived=False,
                created_at=now,
                updated_at=now,
            )
            session.add(copy)
            parent: str | None = None
            for message in path:
                twin = Message(
                    id=new_id(),
                    conversation_id=copy.id,
                    user_id=user_id,
                    parent_id=parent,
                    **{
                        name: getattr(message, name)
                        for name in (
                            "role",
                            "content",
                            "model",
                            "depth",
                            "tokens",
                            "usage",
                            "error",
                            "done_reason",
                            "context_depth",
                            "created_at",
                            "updated_at",
                        )
                    },
                    status="interrupted" if message.status == "generating" else message.status,
                    stop_requested=False,
                )
                session.add(twin)
                session.flush()
                parent = twin.id
            copy.leaf_id = parent
            session.flush()
            return _conversation_public(copy, [])

    # -- answers being written ----------------------------------------------------------------------

    def request_stop(self, user_id: str, conversation_id: str, message_id: str) -> None:
        """Ask whichever replica writes answer ``message_id`` to stop it."""
        with self._sessions.begin() as session:
            self._owned(session, user_id, conversation_id)
            message = self._message(session, conversation_id, message_id)
            if message.role != "assistant":
                raise NoSuchMessage()
            if message.status != "generating":
                raise AnswerFinished(message.status)
            message.stop_requested = True
