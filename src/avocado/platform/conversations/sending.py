"""Sending: my message and the answers to write stored in one transaction, and the history each answer
is sent — the newest turns that fit the model's context, cut at stable blocks, read by one recursive
query that stops once the context is full. The hottest write of the platform: plain inserts, no unit
of work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from avocado.platform.conversations.context import Turn, budget_for, estimate, fit
from avocado.platform.conversations.errors import NoSuchConversation, NoSuchMessage
from avocado.platform.conversations.history import HISTORY, Seed, Turned, walk
from avocado.platform.conversations.models import Conversation, Message, new_id
from avocado.platform.conversations.schemas import MessagePublic
from avocado.platform.conversations.store import CONVERSATIONS, MAX_WALK, MESSAGES, Store, message_public
from avocado.platform.errors import Conflict

__all__ = ["Planned", "Prepared", "Sending"]

SUMMARY_HEADING = "Summary of the earlier part of this conversation:"


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
    seed: Seed | None = None  # what the first answer's end keeps of the path (history.PathCache)


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
                "version",
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
    send_id: str | None = None,
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
        "send_id": send_id,
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


@dataclass
class Planned:
    """A send read and decided but not stored yet: the rows :meth:`Sending.store` writes (my message,
    then the answers), and what the answers need. The route starts the answers before they are
    stored, so the model reads its prompt while the rows are written."""

    prepared: Prepared
    rows: list[dict[str, Any]]


def _answer_rows(
    row: Row[Any] | Conversation,
    parent: tuple[str, int],
    models: list[str],
    context_depth: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The answers to write (``generating``) under ``parent``. Several answers share a ``send_id``:
    they were asked for together, and are shown side by side."""
    send_id = new_id() if len(models) > 1 else None
    return [
        _new_message(
            row,
            parent,
            "assistant",
            "",
            now + timedelta(microseconds=index),  # siblings in the order asked
            model=model,
            status="generating",
            context_depth=context_depth,
            send_id=send_id,
        )
        for index, model in enumerate(models)
    ]


class History(NamedTuple):
    """What a send reads of its path: the messages sent, the first depth sent (0: all), the turns up
    from where it goes that cover them (newest first, the new message first; ``None`` when they may
    not be kept: an answer among them is still being written), and the budget they were read with."""

    messages: list[dict[str, str]]
    cut: int
    up: list[Turned] | None
    budget: int


class Sending(Store):
    def _turns(
        self, session: Session, row: Row[Any] | Conversation, start: str | None, extra: int, budget: int
    ) -> tuple[list[Turned], list[Turned] | None]:
        """The turns :data:`HISTORY` reads up from ``start`` (oldest first): kept in memory when the
        conversation is as its last answer's end left it, else read. With them, the turns that
        cover them, newest first, or ``None`` when they may not be kept."""
        if start is None:
            return [], []
        if self._paths is not None:
            kept = self._paths.up(row.id, start, row.version, budget)
            if kept is not None:
                return walk(kept, extra, budget, MAX_WALK), list(kept)
        params = {"start": start, "extra": extra, "budget": budget, "steps": MAX_WALK}
        turns: list[Turned] = [tuple(found) for found in session.execute(HISTORY, params)]
        keep = (
            self._paths is not None
            and len(turns) < MAX_WALK - 2
            and all(turn[6] != "generating" for turn in turns)
        )
        return turns, turns[::-1] if keep else None

    def _history(
        self,
        session: Session,
        row: Row[Any] | Conversation,
        start: str | None,
        new: Mapping[str, Any] | None = None,
    ) -> History:
        """The turns up to ``start``, then the ``new`` message (not stored yet) when there is one,
        that fit the model's context. With ``summarise`` on, the summary of what was left out joins
        the system prompt."""
        options = row.options or {}
        summary = row.summary if row.summarise and row.summary else None
        budget = budget_for(options, row.system) - (estimate(summary) if summary else 0)
        extra = new["tokens"] if new is not None else 0
        turns, up = self._turns(session, row, start, extra, budget)
        path = [  # unpacked: a row's attributes by name cost more, and a long chat has a hundred rows
            Turn(mid, role, content, depth, tokens)
            for mid, _, role, content, depth, tokens, _ in turns
            if role == "user" or content
        ]
        if new is not None:
            path.append(Turn(new["id"], new["role"], new["content"], new["depth"], new["tokens"]))
            if up is not None:
                fields = ("id", "parent_id", "role", "content", "depth", "tokens", "status")
                up.insert(0, cast(Turned, tuple(new[name] for name in fields)))
        kept = fit(path, budget)
        whole = (not turns or turns[0][1] is None) and len(kept) == len(path)  # [1]: the parent's id
        cut = 0 if whole or not kept else kept[0].depth
        system = [row.system] if row.system else []
        if summary and cut and (row.summary_depth or 0) <= cut:
            system.append(f"{SUMMARY_HEADING}\n{summary}")
        history = [{"role": "system", "content": "\n\n".join(system)}] if system else []
        history.extend({"role": turn.role, "content": turn.content} for turn in kept)
        return History(history, cut, up, budget)

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
            # a leaf that is gone (it has no foreign key) starts a new root, as before
            return (row.leaf_id, row.leaf_depth) if row.leaf_id and row.leaf_depth is not None else None
        parent = self._message(session, row.id, parent_id)
        return parent.id, parent.depth

    def _store(
        self, session: Session, conversation_id: str, rows: list[dict[str, Any]], leaf_id: str
    ) -> None:
        """Insert ``rows`` (messages) as they are; ``leaf_id`` ends the branch shown. The
        conversation moves one version on."""
        session.execute(insert(MESSAGES), rows)
        session.execute(
            update(CONVERSATIONS)
            .where(CONVERSATIONS.c.id == conversation_id)
            .values(
                leaf_id=leaf_id,
                message_count=CONVERSATIONS.c.message_count + len(rows),
                version=CONVERSATIONS.c.version + 1,
                updated_at=self.now(),
            )
        )

    @staticmethod
    def _seed(row: Row[Any] | Conversation, answer_id: str, read: History) -> Seed | None:
        """What answer ``answer_id``'s end keeps of the path. Its version is the one the send's store
        makes when nothing else wrote between (else the end finds another and keeps nothing)."""
        if read.up is None:
            return None
        return Seed(row.id, answer_id, read.up, read.budget, row.version + 1)

    def plan(
        self,
        session: Session,
        user_id: str,
        conversation_id: str,
        content: str,
        models: list[str] | None = None,
        parent_id: str | None = None,
        edit_of: str | None = None,
    ) -> Planned:
        """Read what sending my message needs, in the caller's ``session``, writing nothing: where it
        goes (after the leaf, under ``parent_id``, or beside my message ``edit_of``: a new branch),
        the history each answer is sent, and the rows :meth:`store` writes."""
        row = self._sending(session, user_id, conversation_id)
        parent = self._parent(session, row, parent_id, edit_of)
        mine = _new_message(row, parent, "user", content, self.now(), tokens=estimate(content))
        read = self._history(session, row, parent[0] if parent else None, new=mine)
        answers = _answer_rows(row, (mine["id"], mine["depth"]), models or [row.model], read.cut, self.now())
        siblings = [answer["id"] for answer in answers]
        prepared = Prepared(
            user_id=user_id,
            conversation_id=row.id,
            user_message=_public_of(mine, [mine["id"]]),
            answers=[_public_of(answer, siblings) for answer in answers],
            history=read.messages,
            options=dict(row.options or {}),
            first_exchange=row.message_count == 0 and row.title_source == "new",
            models={answer["id"]: answer["model"] or row.model for answer in answers},
            summarise_to=self._summarise_to(row, read.cut),
            seed=self._seed(row, siblings[0], read),
        )
        return Planned(prepared, [mine, *answers])

    def store(self, planned: Planned) -> Prepared:
        """Write a planned send: my message and its answers (``generating``), in one transaction.
        Plain inserts: this is the hottest write of the platform. :class:`Conflict` when the
        conversation or the message it answers went meanwhile."""
        try:
            with self._sessions.begin() as session:
                prepared = planned.prepared
                self._store(session, prepared.conversation_id, planned.rows, prepared.answers[0].id)
        except IntegrityError:
            raise Conflict("the conversation changed while sending: send again") from None
        return planned.prepared

    def send(
        self,
        user_id: str,
        conversation_id: str,
        content: str,
        models: list[str] | None = None,
        parent_id: str | None = None,
        edit_of: str | None = None,
    ) -> Prepared:
        """:meth:`plan` then :meth:`store`: my message and the answers to write, stored."""
        with self._sessions() as session:
            planned = self.plan(session, user_id, conversation_id, content, models, parent_id, edit_of)
        return self.store(planned)

    def regenerate(self, user_id: str, conversation_id: str, message_id: str, model: str | None) -> Prepared:
        """A new answer beside answer ``message_id`` (a sibling branch), by ``model`` or the same one."""
        with self._sessions.begin() as session:
            # read through the ORM, changed by _store's UPDATE: nothing is written through ``row``
            row = self._owned(session, user_id, conversation_id)
            old = self._message(session, row.id, message_id)
            if old.role != "assistant" or old.parent_id is None:
                raise NoSuchMessage()
            prompt = self._message(session, row.id, old.parent_id)
            read = self._history(session, row, prompt.id)
            answers = _answer_rows(
                row, (prompt.id, prompt.depth), [model or old.model or row.model], read.cut, self.now()
            )
            seed = self._seed(row, answers[0]["id"], read)  # before the store moves the version on
            self._store(session, row.id, answers, answers[0]["id"])
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
                history=read.messages,
                options=dict(row.options or {}),
                models={answers[0]["id"]: answers[0]["model"] or row.model},
                summarise_to=self._summarise_to(row, read.cut),
                seed=seed,
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
            history = self._history(session, row, answer.parent_id).messages
            history.append({"role": "assistant", "content": answer.content})
            answer.status, answer.stop_requested, answer.error = "generating", False, None
            answer.updated_at = self.now()
            session.flush()  # the message first, then its conversation, as an answer's end does
            session.execute(  # a new version: a path kept with this answer's old text is not used
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.id == row.id)
                .values(leaf_id=answer.id, version=CONVERSATIONS.c.version + 1)
            )
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
