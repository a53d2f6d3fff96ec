"""Each user's avatar: an image checked by its first bytes (never by the name or type the browser
claims), at most :data:`MAX_AVATAR_BYTES`, one row per user that goes with the account.

Only raster formats browsers show safely are taken (PNG, JPEG, WebP, GIF): SVG is not, since it
may carry scripts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import Avatar

__all__ = ["AVATAR_TYPES", "MAX_AVATAR_BYTES", "AvatarRecord", "AvatarStore", "image_type"]

MAX_AVATAR_BYTES = 512 * 1024
AVATAR_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


def image_type(data: bytes) -> str | None:
    """The image's media type from its signature, or ``None`` for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class AvatarRecord:
    content_type: str
    size: int
    sha256: str
    updated_at: datetime
    data: bytes = b""


class AvatarStore:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def get(self, user_id: str) -> AvatarRecord | None:
        with self._sessions() as session:
            row = session.get(Avatar, user_id)
            if row is None:
                return None
            return AvatarRecord(row.content_type, row.size, row.sha256, row.updated_at, bytes(row.data))

    def put(self, user_id: str, data: bytes, content_type: str) -> AvatarRecord:
        """Store ``data`` (already checked) as the user's avatar, in place of the one before."""
        digest = hashlib.sha256(data).hexdigest()
        with self._sessions.begin() as session:
            row = session.get(Avatar, user_id)
            if row is None:
                row = Avatar(user_id=user_id)
                session.add(row)
            row.content_type, row.size, row.sha256, row.data = content_type, len(data), digest, data
            row.updated_at = self.now()
            session.flush()
            return AvatarRecord(row.content_type, row.size, row.sha256, row.updated_at)

    def delete(self, user_id: str) -> bool:
        """Remove the user's avatar; whether there was one."""
        with self._sessions.begin() as session:
            result = session.execute(delete(Avatar).where(Avatar.user_id == user_id))
            return bool(getattr(result, "rowcount", 0))
