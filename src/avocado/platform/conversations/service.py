"""Conversations and their messages in the database (synchronous; routes call it in a thread).

Every method takes the caller's id and answers :class:`NoSuchConversation` for a conversation that is
not theirs, as for one that does not exist. Paths through the message tree are read with recursive
queries that stop early: the page of a path shown, or the turns that fit the model's context, never
the whole conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Select, Table, and_, bindparam, delete, insert, literal, or_, select, text, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.context import Turn, budget_for, estimate, fit
from avocado.platform.conversations.errors import (
    AnswerFinished,
    NoSuchConversation,
    NoSuchMessage,
)
from avocado.platform.conversations.folders import check_folder
from avocado.platform.conversations.models import Conversation, ConversationTag, Message, new_id
from avocado.platform.conversations.schemas import (
    ConversationDetail,
    ConversationPublic,
    MessagePublic,
)
from avocado.platform.errors import Conflict, PlatformError
from avocado.platform.feedback.models import Feedback
from avocado.platform.feedback.schemas import FeedbackPublic
from avocado.platform.pages import Page, decode_cursor, encode_cursor

__all__ = ["ConversationService", "Prepared", "new_id"]

NEW_TITLE = "New chat"
SUMMARY_HEADING = "Summary of the earlier part of this conversation:"
MAX_WALK = 100_000  # steps up a path; a guard, far above any real conversation
# Answers to one prompt written within this of each other were asked for together (a send to several
# models writes them a microsecond apart; a regenerate is a request of its own, seconds later at least).
TOGETHER = timedelta(milliseconds=50)


@dataclass
class Prepared:
    """What a generation needs: whose, the answers to write, and the history each is sent."""

    user_id: str
    conversation_id: str
    user_message: MessagePublic | None
    answers: list[MessagePublic]
    history: list[dict[str, str]]
    options: dict[str, Any]
    first_exchange: bool = False
    models: dict[str, str] = field(default_factory=dict)  # answer id -> model
    prefix: str = ""  # continuing an answer: the text it has already
    prior_tokens: int = 0
    summarise_to: int | None = None  # once answered, summarise what lies before this depth


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


MESSAGES = cast(Table, Message.__table__)
CONVERSATIONS = cast(Table, Conversation.__table__)
# What a send reads of its conversation and its leaf, built once (an alias costs to build)
_LEAF = aliased(Message)
SENDING = (
    select(
        *(
            getattr(Conversation, name)
            for name in (
                "id",
                "user_id",
                "model",
                "system",
                "options",
                "summarise",
                "summary",
                "summary_depth",
                "leaf_id",
                "message_count",
                "title_source",
            )
        ),
        _LEAF.depth.label("leaf_depth"),
    )
    .outerjoin(_LEAF, _LEAF.id == Conversation.leaf_id)
    .where(Conversation.id == bindparam("id"), Conversation.user_id == bindparam("user_id"))
)


def _new_message(
    conversation: Row[Any] | Conversation,
    parent: tuple[str, int] | None,
    role: str,
    content: str,
    now: datetime,
    *,
    model: str | None = None,
    tokens: int = 0,
    status: str = "done",
    context_depth: int | None = None,
) -> dict[str, Any]:
    """A message row to insert, as the columns' values."""
    return {
        "id": new_id(),
        "conversation_id": conversation.id,
        "user_id": conversation.user_id,
        "parent_id": parent[0] if parent else None,
        "role": role,
        "content": content,
        "model": model,
        "depth": parent[1] + 1 if parent else 0,
        "tokens": tokens,
        "usage": None,
        "status": status,
        "error": None,
        "done_reason": None,
        "context_depth": context_depth,
        "stop_requested": False,
        "created_at": now,
        "updated_at": now,
    }


def _public_of(values: Mapping[str, Any], siblings: list[str]) -> MessagePublic:
    """A message just inserted, as the API shows it."""
    return MessagePublic(
        id=values["id"],
        parent_id=values["parent_id"],
        role=values["role"],
        content=values["content"],
        model=values["model"],
        status=values["status"],
        error=None,
        done_reason=None,
        usage=None,
        created_at=values["created_at"],
        siblings=siblings,
        in_context=True,
    )


# The turns up from a message until their tokens pass the budget (one past it, to know), with their
# text: the query a send runs, written out so building it costs nothing.
HISTORY = text(
    """
    WITH RECURSIVE path(id, parent_id, role, content, depth, tokens, used, n) AS (
        SELECT id, parent_id, role, content, depth, tokens, tokens, 1 FROM messages WHERE id = :start
        UNION ALL
        SELECT m.id, m.parent_id, m.role, m.content, m.depth, m.tokens, path.used + m.tokens, path.n + 1
        FROM messages m JOIN path ON m.id = path.parent_id
        WHERE path.used <= :budget AND path.n < :steps
    )
    SELECT id, parent_id, role, content, depth, tokens FROM path ORDER BY depth
    """
)


class ConversationService:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    # -- conversations ------------------------------------------------------------------------------

    def _owned(self, session: Session, user_id: str, conversation_id: str) -> Conversation:
        row = session.get(Conversation, conversation_id)
        if row is None or row.user_id != user_id:
            raise NoSuchConversation()
        return row

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
            try:
                when = datetime.fromisoformat(at)
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise PlatformError("cursor: not a cursor this list gave", status=422)
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

    def model_of(self, user_id: str, conversation_id: str) -> str:
        """The conversation's model (what a send checks first), cheaply."""
        with self._sessions() as session:
            found = session.execute(
                select(Conversation.model).where(
                    Conversation.id == conversation_id, Conversation.user_id == user_id
                )
            ).scalar()
        if found is None:
            raise NoSuchConversation()
        return found

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
        query = select(Message.id, Message.parent_id, Message.role, Message.created_at).where(
            Message.conversation_id == conversation_id
        )
        known = [parent for parent in parents if parent is not None]
        conditions = [Message.parent_id.in_(known)] if known else []
        if None in parents:
            conditions.append(Message.parent_id.is_(None))
        siblings: dict[str | None, list[str]] = {}
        answers: dict[str | None, list[tuple[str, datetime]]] = {}
        for message_id, parent_id, role, created_at in session.execute(
            query.where(or_(*conditions)).order_by(Message.created_at, Message.id)
        ):
            siblings.setdefault(parent_id, []).append(message_id)
            if role == "assistant":
                answers.setdefault(parent_id, []).append((message_id, created_at))
        on_path = [message.id for message in path]
        together = {  # an answer on the path -> the others written with it
            message.id: [
                other
                for other, created_at in answers.get(message.parent_id, [])
                if other != message.id and abs(created_at - message.created_at) < TOGETHER
            ]
            for message in path
            if message.role == "assistant"
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

    def _message(self, session: Session, conversation_id: str, message_id: str) -> Message:
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation_id:
            raise NoSuchMessage()
        return message

    def message(self, user_id: str, conversation_id: str, message_id: str) -> MessagePublic:
        with self._sessions() as session:
            self._owned(session, user_id, conversation_id)
            return message_public(self._message(session, conversation_id, message_id))

    # -- sending ------------------------------------------------------------------------------------

    def _history(
        self, session: Session, row: Row[Any] | Conversation, start: str
    ) -> tuple[list[dict[str, str]], int]:
        """The turns up to ``start`` that fit the model's context, and the first depth sent (0: all).
        With ``summarise`` on, the summary of what was left out joins the system prompt."""
        options = row.options or {}
        summary = row.summary if row.summarise and row.summary else None
        budget = budget_for(options, row.system) - (estimate(summary) if summary else 0)
        rows = session.execute(HISTORY, {"start": start, "budget": budget, "steps": MAX_WALK}).all()
        path = [
            Turn(r.id, r.role, r.content, r.depth, r.tokens) for r in rows if r.role == "user" or r.content
        ]
        kept = fit(path, budget)
        whole = bool(rows) and rows[0].parent_id is None and len(kept) == len(path)
        cut = 0 if whole or not kept else kept[0].depth
        system = [row.system] if row.system else []
        if summary and cut and (row.summary_depth or 0) <= cut:
            system.append(f"{SUMMARY_HEADING}\n{summary}")
        history = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        history.extend({"role": turn.role, "content": turn.content} for turn in kept)
        return history, cut

    def _summarise_to(self, row: Row[Any] | Conversation, cut: int) -> int | None:
        """The depth a new summary should reach, when the one kept is behind the cut."""
        return cut if row.summarise and cut and row.summary_depth != cut else None

    def _sending(self, session: Session, user_id: str, conversation_id: str) -> Row[Any]:
        """The conversation's fields a send reads, with its leaf's depth, in one query."""
        found = session.execute(SENDING, {"id": conversation_id, "user_id": user_id}).first()
        if found is None:
            raise NoSuchConversation()
        return cast(Row[Any], found)

    def _parent(
        self, session: Session, row: Row[Any], parent_id: str | None, edit_of: str | None
    ) -> tuple[str, int] | None:
        """Where a new message goes (its parent's id and depth): under ``parent_id``, beside
        ``edit_of``, or after the leaf."""
        if edit_of is not None:
            edited = self._message(session, row.id, edit_of)
            if edited.role != "user":
                raise NoSuchMessage()
            parent_id = edited.parent_id
            if parent_id is None:
                return None
        elif parent_id is None:
            return (row.leaf_id, row.leaf_depth) if row.leaf_id else None
        parent = self._message(session, row.id, parent_id)
        return parent.id, parent.depth

    def _add_answers(
        self,
        session: Session,
        row: Row[Any] | Conversation,
        parent: tuple[str, int],
        models: list[str],
        context_depth: int,
        added: int = 0,
    ) -> list[dict[str, Any]]:
        """Insert the answers to write (``generating``) under ``parent``; they end the branch shown.
        ``added``: messages inserted before them in this send, counted with them."""
        now = self.now()
        answers = [
            _new_message(
                row,
                parent,
                "assistant",
                "",
                now + timedelta(microseconds=index),  # siblings in the order asked
                model=model,
                status="generating",
                context_depth=context_depth,
            )
            for index, model in enumerate(models)
        ]
        session.execute(insert(MESSAGES), answers)
        session.execute(
            update(CONVERSATIONS)
            .where(CONVERSATIONS.c.id == row.id)
            .values(
                leaf_id=answers[0]["id"],
                message_count=CONVERSATIONS.c.message_count + added + len(answers),
                updated_at=now,
            )
        )
        return answers

    def send(
        self,
        user_id: str,
        conversation_id: str,
        content: str,
        models: list[str] | None = None,
        parent_id: str | None = None,
        edit_of: str | None = None,
    ) -> Prepared:
        """Store my message and the answers to write (``generating``): after the leaf, under
        ``parent_id``, or beside my message ``edit_of`` (a new branch). Written with plain inserts:
        this is the hottest write of the platform."""
        with self._sessions.begin() as session:
            row = self._sending(session, user_id, conversation_id)
            parent = self._parent(session, row, parent_id, edit_of)
            mine = _new_message(row, parent, "user", content, self.now(), tokens=estimate(content))
            session.execute(insert(MESSAGES), [mine])
            history, cut = self._history(session, row, mine["id"])
            answers = self._add_answers(
                session, row, (mine["id"], mine["depth"]), models or [row.model], cut, added=1
            )
            siblings = [answer["id"] for answer in answers]
            return Prepared(
                user_id=user_id,
                conversation_id=row.id,
                user_message=_public_of(mine, [mine["id"]]),
                answers=[_public_of(answer, siblings) for answer in answers],
                history=history,
                options=dict(row.options or {}),
                first_exchange=row.message_count == 0 and row.title_source == "new",
                models={answer["id"]: answer["model"] or row.model for answer in answers},
                summarise_to=self._summarise_to(row, cut),
            )

    def regenerate(self, user_id: str, conversation_id: str, message_id: str, model: str | None) -> Prepared:
        """A new answer beside answer ``message_id`` (a sibling branch), by ``model`` or the same one."""
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, conversation_id)
            old = self._message(session, row.id, message_id)
            if old.role != "assistant" or old.parent_id is None:
                raise NoSuchMessage()
            prompt = self._message(session, row.id, old.parent_id)
            history, cut = self._history(session, row, prompt.id)
            answers = self._add_answers(
                session, row, (prompt.id, prompt.depth), [model or old.model or row.model], cut
            )
            siblings = list(
                session.scalars(
                    select(Message.id)
                    .where(Message.parent_id == prompt.id)
                    .order_by(Message.created_at, Message.id)
                )
            )
            return Prepared(
                user_id=user_id,
                conversation_id=row.id,
                user_message=None,
                answers=[_public_of(answers[0], siblings)],
                history=history,
                options=dict(row.options or {}),
                models={answers[0]["id"]: answers[0]["model"] or row.model},
                summarise_to=self._summarise_to(row, cut),
            )

    def resume(self, user_id: str, conversation_id: str, message_id: str) -> Prepared:
        """Go on writing answer ``message_id`` where it ended (its length limit, a stop)."""
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, conversation_id)
            answer = self._message(session, row.id, message_id)
            if answer.role != "assistant" or answer.parent_id is None:
                raise NoSuchMessage()
            if answer.status == "generating":
                raise Conflict("the answer is still being written")
            history, _ = self._history(session, row, answer.parent_id)
            history.append({"role": "assistant", "content": answer.content})
            answer.status, answer.stop_requested, answer.error = "generating", False, None
            answer.updated_at = self.now()
            row.leaf_id = answer.id
            session.flush()
            return Prepared(
                user_id=user_id,
                conversation_id=row.id,
                user_message=None,
                answers=[message_public(answer)],
                history=history,
                options=dict(row.options or {}),
                models={answer.id: answer.model or row.model},
                prefix=answer.content,
                prior_tokens=answer.tokens,
            )

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
