"""Keyset pages, the convention of every platform list: ``{"items": [...], "next_cursor": ...}``.

A cursor is the sort key of the last item of a page, as base64url JSON: opaque to clients, stable
under inserts (no offsets), and checked on the way in (a tampered cursor is a 422, never a 500).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import QueryableAttribute

from avocado.platform.errors import PlatformError

__all__ = [
    "Cursor",
    "Limit",
    "Page",
    "cursor_time",
    "decode_cursor",
    "encode_cursor",
    "time_cursor",
    "time_keyset",
]

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=200, description="Items per page")]
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The values in ``cursor``, each of the type at its place in ``types``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(values, types, strict=True))
    ):
        raise PlatformError("cursor: not a cursor this list gave", status=422)
    return values


def cursor_time(value: str) -> datetime:
    """A time a cursor carries (ISO 8601 with its offset); ``422`` for anything else."""
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise PlatformError("cursor: not a cursor this list gave", status=422) from None
    if stamp.tzinfo is None:
        raise PlatformError("cursor: not a cursor this list gave", status=422)
    return stamp


def time_cursor(at: datetime, key: str) -> str:
    """The cursor after an item of a list ordered by a time and then an id."""
    return encode_cursor([at.isoformat(), key])


def time_keyset(
    cursor: str, at: QueryableAttribute[datetime], key: QueryableAttribute[str], *, newest_first: bool = True
) -> ColumnElement[bool]:
    """The rows after :func:`time_cursor`'s item in a list ordered by ``at`` then ``key`` (both
    descending with ``newest_first``, else both ascending)."""
    when, after = decode_cursor(cursor, (str, str))
    stamp = cursor_time(when)
    if newest_first:
        return or_(at < stamp, and_(at == stamp, key < after))
    return or_(at > stamp, and_(at == stamp, key > after))
