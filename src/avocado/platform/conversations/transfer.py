"""Export and import of conversations: our JSON (lossless: every branch, every field kept), Markdown
(the active path, for reading), and Open WebUI's chat export (its ``history`` tree, branches kept).

Imported conversations are new ones of the importer: ids are made anew, the tree and the branch
shown are kept, answers that were being written come in ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.context import counted, estimate
from avocado.platform.conversations.errors import NoSuchConversation
from avocado.platform.conversations.models import Conversation, ConversationTag, Message
from avocado.platform.conversations.schemas import ConversationPublic
from avocado.platform.conversations.service import ConversationService, new_id
from avocado.platform.errors import PlatformError

__all__ = ["FORMAT", "MAX_IMPORT", "ImportRefused", "Transfer", "to_markdown"]

FORMAT = "avocado.conversations"
VERSION = 1
MAX_IMPORT = 10_000  # conversations in one import
STATUSES = {"done", "stopped", "failed", "interrupted"}
MESSAGE_FIELDS = ("role", "content", "model", "status", "error", "done_reason", "usage", "send_id")


class ImportRefused(PlatformError):
    status = 422


def _time(value: Any) -> datetime:
    """A time from an export: ISO text, or Unix seconds (Open WebUI; milliseconds too)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return utcnow()
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return utcnow()


def _text(value: Any, limit: int) -> str:
    if isinstance(value, list):  # content parts: keep the text ones
        value = "".join(part.get("text", "") for part in value if isinstance(part, dict))
    return value[:limit] if isinstance(value, str) else ""


def to_markdown(exported: Mapping[str, Any]) -> str:
    """The conversation's active path as Markdown, one heading per message."""
    by_id = {m["id"]: m for m in exported["messages"]}
    path, at = [], exported.get("leaf_id")
    while at in by_id:
        path.append(by_id[at])
        at = by_id[at]["parent_id"]
    lines = [f"# {exported['title']}", "", f"Model: `{exported['model']}`", ""]
    if exported.get("system"):
        lines += ["> " + line for line in exported["system"].splitlines()] + [""]
    for message in reversed(path):
        who = (
            "You" if message["role"] == "user" else f"Assistant ({message.get('model') or exported['model']})"
        )
        lines += [f"## {who}", "", message["content"], ""]
    return "\n".join(lines)


class Transfer:
    def __init__(self, sessions: sessionmaker[Session], conversations: ConversationService) -> None:
        self._sessions = sessions
        self.conversations = conversations

    # -- export -------------------------------------------------------------------------------------

    def _export(self, session: Session, row: Conversation) -> dict[str, Any]:
        messages = session.scalars(
            select(Message)
            .where(Message.conversation_id == row.id)
            .order_by(Message.depth, Message.created_at)
        )
        tags = session.scalars(select(ConversationTag.tag).where(ConversationTag.conversation_id == row.id))
        return {
            "id": row.id,
            "title": row.title,
            "model": row.model,
            "system": row.system,
            "options": row.options or {},
            "summarise": row.summarise,
            "pinned": row.pinned,
            "archived": row.archived,
            "tags": sorted(tags),
            "leaf_id": row.leaf_id,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "messages": [
                {
                    "id": m.id,
                    "parent_id": m.parent_id,
                    **{name: getattr(m, name) for name in MESSAGE_FIELDS},
                    "created_at": m.created_at.isoformat(),
                }
                for m in messages
            ],
        }

    def export_one(self, user_id: str, conversation_id: str) -> dict[str, Any]:
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            if row is None or row.user_id != user_id:
                raise NoSuchConversation()
            return {"format": FORMAT, "version": VERSION, "conversations": [self._export(session, row)]}

    def export_all(self, user_id: str) -> Iterator[dict[str, Any]]:
        """Every conversation of mine, one at a time (a long history is not held in memory at once)."""
        with self._sessions() as session:
            ids = list(
                session.scalars(
                    select(Conversation.id)
                    .where(Conversation.user_id == user_id)
                    .order_by(Conversation.created_at)
                )
            )
        for conversation_id in ids:
            with self._sessions() as session:
                row = session.get(Conversation, conversation_id)
                if row is not None:
                    yield self._export(session, row)

    # -- import -------------------------------------------------------------------------------------

    def import_any(self, user_id: str, payload: Any) -> list[ConversationPublic]:
        """Our export, or Open WebUI's (a list of chats, or one)."""
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            items = payload.get("conversations")
            if not isinstance(items, list):
                raise ImportRefused("conversations: a list is expected")
            conversations = [self._ours(item) for item in items]
        else:
            chats = payload if isinstance(payload, list) else [payload]
            if not all(
                isinstance(chat, dict) and isinstance(chat.get("chat", chat).get("history"), dict)
                for chat in chats
            ):
                raise ImportRefused(
                    f"not an export this platform reads: use format {FORMAT!r} or Open WebUI's chat export"
                )
            conversations = [self._open_webui(chat) for chat in chats]
        if len(conversations) > MAX_IMPORT:
            raise ImportRefused(f"at most {MAX_IMPORT} conversations at once")
        return [self._store(user_id, conversation) for conversation in conversations]

    @staticmethod
    def _ours(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
            raise ImportRefused("conversations: each needs its messages")
        return item

    @staticmethod
    def _open_webui(entry: dict[str, Any]) -> dict[str, Any]:
        chat = entry.get("chat", entry)
        history = chat["history"]
        raw = history.get("messages") if isinstance(history.get("messages"), dict) else {}
        models = chat.get("models") if isinstance(chat.get("models"), list) else []
        messages = []
        for key, message in raw.items():
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                continue
            messages.append(
                {
                    "id": str(message.get("id") or key),
                    "parent_id": message.get("parentId"),
                    "role": message["role"],
                    "content": message.get("content"),
                    "model": message.get("model"),
                    "status": "done" if message.get("done", True) else "interrupted",
                    "created_at": message.get("timestamp"),
                }
            )
        return {
            "title": entry.get("title") or chat.get("title"),
            "model": models[0] if models and isinstance(models[0], str) else "unknown",
            "system": chat.get("system") if isinstance(chat.get("system"), str) else None,
            "options": {},
            "pinned": bool(entry.get("pinned")),
            "archived": bool(entry.get("archived")),
            "tags": [t.get("name", t) if isinstance(t, dict) else t for t in chat.get("tags") or []],
            "leaf_id": history.get("currentId"),
            "created_at": entry.get("created_at") or chat.get("timestamp"),
            "updated_at": entry.get("updated_at") or chat.get("timestamp"),
            "messages": messages,
        }

    def _store(self, user_id: str, item: Mapping[str, Any]) -> ConversationPublic:
        """One conversation: a new one of ``user_id`` with the same tree."""
        raw = [m for m in item["messages"] if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        known = {str(m.get("id")) for m in raw}
        ids = {str(m.get("id")): new_id() for m in raw}
        with self._sessions.begin() as session:
            row = Conversation(
                id=new_id(),
                user_id=user_id,
                folder_id=None,
                title=_text(item.get("title"), 300) or "Imported chat",
                title_source="user",
                model=_text(item.get("model"), 200) or "unknown",
                system=_text(item.get("system"), 200_000) or None,
                options=item.get("options") if isinstance(item.get("options"), dict) else {},
                summarise=bool(item.get("summarise")),
                summary=None,
                summary_depth=None,
                leaf_id=None,
                message_count=len(raw),
                pinned=bool(item.get("pinned")),
                archived=bool(item.get("archived")),
                created_at=_time(item.get("created_at")),
                updated_at=_time(item.get("updated_at") or item.get("created_at")),
            )
            session.add(row)
            session.flush()
            depth: dict[str, int] = {}
            pending = list(raw)
            while pending:  # parents before children, whatever the order in the file
                later = []
                for m in pending:
                    old_parent = str(m.get("parent_id")) if m.get("parent_id") is not None else None
                    if old_parent is not None and old_parent in known and old_parent not in depth:
                        later.append(m)
                        continue
                    parent = old_parent if old_parent in known else None
                    depth[str(m.get("id"))] = depth[parent] + 1 if parent else 0
                    session.add(self._message(row, m, ids, parent, depth[str(m.get("id"))]))
                session.flush()
                if len(later) == len(pending):  # a cycle: what is left has no way to the root
                    raise ImportRefused("messages: their parents form a cycle")
                pending = later
            leaf = item.get("leaf_id")
            row.leaf_id = ids.get(str(leaf)) if leaf is not None else None
            if row.leaf_id is None and raw:
                row.leaf_id = ids[max(depth, key=lambda k: depth[k])]
            for tag in {str(t).lower()[:64] for t in item.get("tags") or [] if str(t).strip()}:
                session.add(ConversationTag(conversation_id=row.id, tag=tag))
            session.flush()
        return self.conversations.get(user_id, row.id)

    @staticmethod
    def _message(
        row: Conversation, m: Mapping[str, Any], ids: Mapping[str, str], parent: str | None, depth: int
    ) -> Message:
        content = _text(m.get("content"), 200_000)
        status = m.get("status") if m.get("status") in STATUSES else "done"
        created = _time(m.get("created_at"))
        usage = m.get("usage") if isinstance(m.get("usage"), dict) else None
        return Message(
            id=ids[str(m.get("id"))],
            conversation_id=row.id,
            user_id=row.user_id,
            parent_id=ids[parent] if parent else None,
            role=m["role"],
            content=content,
            model=_text(m.get("model"), 200) or None,
            depth=depth,
            tokens=(counted(usage.get("completion_tokens")) if usage else None) or estimate(content),
            usage=usage,
            status="done" if m["role"] == "user" else status,
            error=_text(m.get("error"), 2000) or None,
            done_reason=_text(m.get("done_reason"), 32) or None,
            context_depth=None,
            stop_requested=False,
            send_id=_text(m.get("send_id"), 36) or None,  # answers asked of several models at once
            created_at=created,
            updated_at=created,
        )
