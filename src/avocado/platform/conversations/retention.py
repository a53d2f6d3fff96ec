"""Retention, applied by a background job: archived conversations go after the days the admin set,
and each user keeps at most the number of conversations set (the oldest unpinned ones go first).
What it removed is logged and audited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.admin.service import Audit, SiteSettings
from avocado.platform.conversations.models import Conversation

__all__ = ["EVERY", "Retention"]

log = logging.getLogger(__name__)

EVERY = 3600.0  # seconds between runs


class Retention:
    def __init__(self, sessions: sessionmaker[Session], site: SiteSettings, audit: Audit) -> None:
        self._sessions = sessions
        self.site = site
        self.audit = audit

    def apply(self) -> dict[str, int]:
        """Apply the rules now; how many conversations each removed."""
        settings = self.site.all()
        removed = {"archived": 0, "over_cap": 0}
        with self._sessions.begin() as session:
            days = settings.get("retention_archived_days")
            if days:
                removed["archived"] = self._archived(session, days)
            cap = settings.get("max_conversations_per_user")
            if cap:
                removed["over_cap"] = self._over_cap(session, cap)
            if any(removed.values()):
                self.audit.record(session, "retention.applied", detail={**removed, "rules": settings})
        if any(removed.values()):
            log.info("retention removed %d archived and %d over-cap conversations", *removed.values())
        return removed

    @staticmethod
    def _archived(session: Session, days: int) -> int:
        before = utcnow() - timedelta(days=days)
        result = session.execute(
            delete(Conversation).where(Conversation.archived.is_(True), Conversation.updated_at < before)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    @staticmethod
    def _over_cap(session: Session, cap: int) -> int:
        counts = select(Conversation.user_id).group_by(Conversation.user_id).having(func.count() > cap)
        removed = 0
        for user_id in list(session.scalars(counts)):
            keep = (
                select(Conversation.id)
                .where(Conversation.user_id == user_id)
                .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id.desc())
                .limit(cap)
            )
            result = session.execute(
                delete(Conversation).where(
                    Conversation.user_id == user_id,
                    Conversation.pinned.is_(False),
                    Conversation.id.not_in(select(keep.subquery().c.id)),
                )
            )
            removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return removed

    def job(self) -> Callable[[], Awaitable[None]]:
        async def apply_retention() -> None:
            await asyncio.to_thread(self.apply)

        return apply_retention
