"""Every module that maps a table, in one list, so ``Base.metadata`` knows the whole schema.

Alembic compares migrations against this metadata; a new feature with tables (accounts,
conversations) adds its models module here.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from avocado.db.base import Base

__all__ = ["MODEL_MODULES", "load_metadata"]

MODEL_MODULES = (
    "avocado.gateway.keys.models",
    "avocado.platform.accounts.models",
    "avocado.platform.admin.models",
    "avocado.platform.limits.models",
)


def load_metadata() -> MetaData:
    """Import every models module and return the metadata they registered their tables on."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
