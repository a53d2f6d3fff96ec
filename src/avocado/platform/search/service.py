"""Search on the database in use: SQLite's FTS5 or PostgreSQL's ``tsvector`` (made by migration 0010).

A query is words (the last one a prefix, as the user types); every word must match. Titles come
first on the first page, then messages by rank. Pages go by offset inside the ranked list: a rank
has no stable key to resume from, and a cursor still hides it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from avocado.platform.pages import Page, decode_cursor, encode_cursor
from avocado.platform.search.schemas import Filters, SearchHit

__all__ = ["MAX_WORDS", "SearchService", "words_of"]

MAX_WORDS = 8
OPEN, CLOSE = "\ue000", "\ue001"  # marks around found words, before escaping; then <mark>
SNIPPET_WORDS = 16


def words_of(query: str) -> list[str]:
    """The words of a query (letters and digits), at most :data:`MAX_WORDS`, each cut to 64."""
    return [word[:64].lower() for word in re.findall(r"\w+", query)[:MAX_WORDS]]


def _utc(value: Any) -> datetime | None:
    """A time read by raw SQL: SQLite gives text or a naive value, stored as UTC (``UtcDateTime``)."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _marked(snippet: str) -> str:
    return html.escape(snippet).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


def _conditions(filters: Filters, params: dict[str, Any], at: str) -> str:
    """SQL conditions on ``c`` (the conversation) and the row's time column ``at``."""
    parts = []
    if filters.folder_id is not None:
        parts.append("c.folder_id = :folder_id")
        params["folder_id"] = filters.folder_id
    if filters.tag is not None:
        parts.append("c.id IN (SELECT conversation_id FROM conversation_tags WHERE tag = :tag)")
        params["tag"] = filters.tag.lower()
    if filters.model is not None:
        parts.append("c.model = :model")
        params["model"] = filters.model
    if filters.archived is not None:
        parts.append("c.archived = :archived")
        params["archived"] = filters.archived
    if filters.pinned is not None:
        parts.append("c.pinned = :pinned")
        params["pinned"] = filters.pinned
    if filters.since is not None:
        parts.append(f"{at} >= :since")
        params["since"] = filters.since
    if filters.until is not None:
        parts.append(f"{at} < :until")
        params["until"] = filters.until
    return "".join(f" AND {part}" for part in parts)


# kind -> (FTS table, its text column, the columns found, joins, the time filtered on)
SQLITE_KINDS = {
    "title": (
        "conversations_fts",
        "title",
        "c.id AS conversation_id, NULL AS message_id, NULL AS note_id, c.title, c.updated_at AS created_at",
        "JOIN conversations c ON c.rowid = conversations_fts.rowid",
        "c.updated_at",
    ),
    "note": (
        "notes_fts",
        "body",
        "n.conversation_id, NULL AS message_id, n.id AS note_id, n.title, n.updated_at AS created_at",
        "JOIN notes n ON n.rowid = notes_fts.rowid LEFT JOIN conversations c ON c.id = n.conversation_id",
        "n.updated_at",
    ),
    "message": (
        "messages_fts",
        "body",
        "m.conversation_id, m.id AS message_id, NULL AS note_id, c.title, m.created_at",
        "JOIN messages m ON m.rowid = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id",
        "m.created_at",
    ),
}
NOTE_TEXT = "n.title || ' ' || n.content"
# kind -> (the columns found, its text, its vector, the rows, their owner, the time filtered on)
POSTGRES_KINDS = {
    "title": (
        "c.id AS conversation_id, NULL AS message_id, NULL AS note_id, c.title, c.updated_at AS created_at",
        "c.title",
        "to_tsvector('simple', c.title)",
        "conversations c",
        "c.user_id",
        "c.updated_at",
    ),
    "note": (
        "n.conversation_id, NULL AS message_id, n.id AS note_id, n.title, n.updated_at AS created_at",
        NOTE_TEXT,
        f"to_tsvector('simple', {NOTE_TEXT})",
        "notes n LEFT JOIN conversations c ON c.id = n.conversation_id",
        "n.user_id",
        "n.updated_at",
    ),
    "message": (
        "m.conversation_id, m.id AS message_id, NULL AS note_id, c.title, m.created_at",
        "m.content",
        "m.search_vector",
        "messages m JOIN conversations c ON c.id = m.conversation_id",
        "m.user_id",
        "m.created_at",
    ),
}


class SearchService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def search(
        self, user_id: str, query: str, filters: Filters, cursor: str | None = None, limit: int = 20
    ) -> Page[SearchHit]:
        words = words_of(query)
        if not words:
            return Page(items=[], next_cursor=None)
        offset = int(decode_cursor(cursor, (int,))[0]) if cursor else 0
        with self._sessions() as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            find = self._postgres if postgres else self._sqlite
            first: list[SearchHit] = []
            if offset == 0:  # titles and notes lead the first page
                first = find(session, "title", user_id, words, filters, 0, limit)
                first += find(session, "note", user_id, words, filters, 0, limit)
            messages = find(session, "message", user_id, words, filters, offset, limit + 1)
        more = len(messages) > limit
        items = first + messages[:limit]
        return Page(items=items, next_cursor=encode_cursor([offset + limit]) if more else None)

    # -- SQLite: FTS5 -------------------------------------------------------------------------------

    @staticmethod
    def _match(user_id: str, words: Sequence[str], column: str) -> str:
        phrases = " ".join(f'"{word}"' for word in words[:-1]) + f' "{words[-1]}"*'
        return f'owner : "u{user_id.replace("-", "")}" AND {column} : ({phrases.strip()})'

    def _sqlite(
        self,
        session: Session,
        kind: str,
        user_id: str,
        words: Sequence[str],
        filters: Filters,
        offset: int,
        limit: int,
    ) -> list[SearchHit]:
        params: dict[str, Any] = {"limit": limit, "offset": offset, "open": OPEN, "close": CLOSE}
        params["n"] = SNIPPET_WORDS
        table, column, columns, joins, at = SQLITE_KINDS[kind]
        params["match"] = self._match(user_id, words, column)
        sql = (
            f"SELECT {columns}, snippet({table}, 1, :open, :close, '…', :n) AS snippet, bm25({table}) AS rank"
            f" FROM {table} {joins} WHERE {table} MATCH :match" + _conditions(filters, params, at)
        )
        rows = session.execute(text(sql + " ORDER BY rank LIMIT :limit OFFSET :offset"), params)
        return [self._hit(kind, row, -float(row.rank)) for row in rows]

    # -- PostgreSQL: tsvector -----------------------------------------------------------------------

    def _postgres(
        self,
        session: Session,
        kind: str,
        user_id: str,
        words: Sequence[str],
        filters: Filters,
        offset: int,
        limit: int,
    ) -> list[SearchHit]:
        tsquery = " & ".join([*words[:-1], f"{words[-1]}:*"])
        params: dict[str, Any] = {"limit": limit, "offset": offset, "q": tsquery, "user_id": user_id}
        params["headline"] = f"StartSel={OPEN}, StopSel={CLOSE}, MaxWords={SNIPPET_WORDS + 4}, MinWords=6"
        columns, body, vector, joins, owner, at = POSTGRES_KINDS[kind]
        inner = (
            f"SELECT {columns}, {body} AS body, ts_rank({vector}, q) AS rank"
            f" FROM {joins}, to_tsquery('simple', :q) q"
            f" WHERE {owner} = :user_id AND {vector} @@ q" + _conditions(filters, params, at)
        )
        if kind == "message":  # on SQLite, the triggers index an answer once it is written
            inner += " AND m.status <> 'generating'"
        sql = (
            "SELECT page.*, ts_headline('simple', page.body, to_tsquery('simple', :q), :headline) AS snippet"
            f" FROM ({inner} ORDER BY rank DESC, 2 LIMIT :limit OFFSET :offset) page ORDER BY rank DESC, 2"
        )
        rows = session.execute(text(sql), params)
        return [self._hit(kind, row, float(row.rank)) for row in rows]

    @staticmethod
    def _hit(kind: str, row: Any, score: float) -> SearchHit:
        return SearchHit(
            kind=kind,  # type: ignore[arg-type]
            conversation_id=row.conversation_id,
            message_id=row.message_id,
            note_id=row.note_id,
            title=row.title,
            snippet=_marked(row.snippet or ""),
            score=round(score, 6),
            created_at=_utc(row.created_at),
        )
