"""Share links in the database. A link is a random token; only its hash is kept, so the database
cannot hand out links, and a revoked link stays revoked."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import User
from avocado.platform.conversations.service import ConversationService, new_id
from avocado.platform.errors import NotFound
from avocado.platform.sharing.models import Share
from avocado.platform.sharing.schemas import ShareCreated, SharedConversation, SharedMessage, SharePublic

__all__ = ["MAX_SHARED", "ShareService"]

MAX_SHARED = 5000  # messages of the active path a snapshot keeps


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: Share) -> SharePublic:
    return SharePublic(
        id=row.id,
        conversation_id=row.conversation_id,
        title=row.title,
        message_count=len(row.snapshot),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ShareService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        conversations: ConversationService,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.conversations = conversations
        self.now = now

    def share(self, user_id: str, conversation_id: str, base_url: str) -> ShareCreated:
        """A link to the conversation's active path as it is now."""
        detail = self.conversations.detail(user_id, conversation_id, MAX_SHARED)
        snapshot = [
            {"role": m.role, "content": m.content, "model": m.model, "created_at": m.created_at.isoformat()}
            for m in detail.messages
            if m.content
        ]
        token = secrets.token_urlsafe(24)
        with self._sessions.begin() as session:
            row = Share(
                id=new_id(),
                token_hash=_hash(token),
                user_id=user_id,
                conversation_id=conversation_id,
                title=detail.title,
                snapshot=snapshot,
                created_at=self.now(),
                revoked_at=None,
            )
            session.add(row)
            session.flush()
            public = _public(row)
        return ShareCreated(**public.model_dump(), token=token, url=f"{base_url.rstrip('/')}/s/{token}")

    def list(self, user_id: str, conversation_id: str) -> list[SharePublic]:
        self.conversations.get(user_id, conversation_id)  # mine, or 404
        with self._sessions() as session:
            rows = session.scalars(
                select(Share)
                .where(Share.user_id == user_id, Share.conversation_id == conversation_id)
                .order_by(Share.created_at.desc(), Share.id)
            )
            return [_public(row) for row in rows]

    def revoke(self, user_id: str, share_id: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(Share, share_id)
            if row is None or row.user_id != user_id:
                raise NotFound("no such share link")
            if row.revoked_at is None:
                row.revoked_at = self.now()

    def open(self, token: str) -> SharedConversation:
        """The snapshot behind a link that is still shared (a revoked or unknown one is 404)."""
        with self._sessions() as session:
            row = session.scalars(select(Share).where(Share.token_hash == _hash(token))).first()
            if row is None or row.revoked_at is not None:
                raise NotFound("no such shared conversation (the link may have been revoked)")
            owner = session.get(User, row.user_id)
            return SharedConversation(
                title=row.title,
                shared_by=owner.name if owner else "",
                created_at=row.created_at,
                messages=[SharedMessage.model_validate(m) for m in row.snapshot],
            )
