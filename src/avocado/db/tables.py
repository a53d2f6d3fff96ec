"""Every module that maps a table, in one list, so ``Base.metadata`` knows the whole schema.

Alembic compares migrations against this metadata; a new feature with tables (accounts,
conversations) adds its models module here.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from avocado.db.base import Base

__all__ = ["MODEL_MODULES", "by_hand", "include_object", "load_metadata"]

MODEL_MODULES = (
    "avocado.gateway.keys.models",
    "avocado.platform.accounts.models",
    "avocado.platform.admin.models",
    "avocado.platform.conversations.models",
    "avocado.platform.notes.models",
    "avocado.platform.feedback.models",
    "avocado.platform.sharing.models",
)


def load_metadata() -> MetaData:
    """Import every models module and return the metadata they registered their tables on."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


# Search structures the migrations make by hand, per database (FTS5 tables and their triggers on
# SQLite; a generated tsvector column and its GIN index on PostgreSQL): not in the models.
HAND_MADE = ("_fts", "search_vector", "_search")


def by_hand(name: str | None) -> bool:
    """Whether ``name`` is one of the search structures that the models leave out."""
    return name is not None and any(part in name for part in HAND_MADE)


def include_object(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: leave the hand-made search structures out of comparisons."""
    return not (reflected and by_hand(name))
