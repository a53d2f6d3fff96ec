"""A user's preferences (default model, system prompt, theme), one row per user made on first change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from avocado.db.base import utcnow
from avocado.platform.accounts.models import Preferences as PreferencesRow

__all__ = ["DEFAULT_THEME", "PreferenceRecord", "PreferenceStore"]

DEFAULT_THEME = "system"


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    default_model: str | None = None
    system_prompt: str | None = None
    theme: str = DEFAULT_THEME


def _record(row: PreferencesRow | None) -> PreferenceRecord:
    if row is None:
        return PreferenceRecord()
    return PreferenceRecord(row.default_model, row.system_prompt, row.theme)


class PreferenceStore:
    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self.now = now

    def get(self, user_id: str) -> PreferenceRecord:
        with self._sessions() as session:
            return _record(session.get(PreferencesRow, user_id))

    def update(self, user_id: str, changes: Mapping[str, Any]) -> PreferenceRecord:
        """Set the fields in ``changes`` (``None`` clears one; ``theme`` back to its default)."""
        with self._sessions.begin() as session:
            row = session.get(PreferencesRow, user_id)
            if row is None:
                row = PreferencesRow(user_id=user_id, theme=DEFAULT_THEME, updated_at=self.now())
                session.add(row)
            for field, value in changes.items():
                if field == "theme" and value is None:
                    value = DEFAULT_THEME
                setattr(row, field, value)
            row.updated_at = self.now()
            session.flush()
            return _record(row)
