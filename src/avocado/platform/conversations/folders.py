"""Folders of conversations: mine, nested by ``parent_id``; another user's is :class:`NoSuchFolder`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.conversations.errors import NoSuchFolder
from avocado.platform.conversations.models import Folder, new_id
from avocado.platform.conversations.schemas import FolderPublic
from avocado.platform.errors import Conflict

__all__ = ["FolderService", "check_folder"]


def check_folder(session: Session, user_id: str, folder_id: str | None) -> None:
    """:class:`NoSuchFolder` unless ``folder_id`` is none or one of ``user_id``'s folders."""
    if folder_id is None:
        return
    folder = session.get(Folder, folder_id)
    if folder is None or folder.user_id != user_id:
        raise NoSuchFolder()


def _public(row: Folder) -> FolderPublic:
    return FolderPublic(id=row.id, name=row.name, parent_id=row.parent_id, created_at=row.created_at)


class FolderService:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def _owned(self, session: Session, user_id: str, folder_id: str) -> Folder:
        row = session.get(Folder, folder_id)
        if row is None or row.user_id != user_id:
            raise NoSuchFolder()
        return row

    def list(self, user_id: str) -> list[FolderPublic]:
        """All my folders, by name."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Folder).where(Folder.user_id == user_id).order_by(Folder.name, Folder.id)
            )
            return [_public(row) for row in rows]

    def create(self, user_id: str, name: str, parent_id: str | None) -> FolderPublic:
        with self._sessions.begin() as session:
            check_folder(session, user_id, parent_id)
            row = Folder(id=new_id(), user_id=user_id, parent_id=parent_id, name=name, created_at=self.now())
            session.add(row)
            session.flush()
            return _public(row)

    def update(self, user_id: str, folder_id: str, changes: Mapping[str, Any]) -> FolderPublic:
        """Rename, or move inside another folder (``parent_id``; ``None`` for the top)."""
        with self._sessions.begin() as session:
            row = self._owned(session, user_id, folder_id)
            if changes.get("name") is not None:
                row.name = changes["name"]
            if "parent_id" in changes:
                self._move(session, user_id, row, changes["parent_id"])
            session.flush()
            return _public(row)

    @staticmethod
    def _move(session: Session, user_id: str, row: Folder, parent_id: str | None) -> None:
        check_folder(session, user_id, parent_id)
        ancestor = parent_id
        while ancestor is not None:  # a folder cannot go inside itself
            if ancestor == row.id:
                raise Conflict("a folder cannot be moved inside itself")
            ancestor = session.scalar(select(Folder.parent_id).where(Folder.id == ancestor))
        row.parent_id = parent_id

    def delete(self, user_id: str, folder_id: str) -> None:
        """Delete a folder and the folders in it; their conversations stay, out of any folder."""
        with self._sessions.begin() as session:
            session.delete(self._owned(session, user_id, folder_id))
