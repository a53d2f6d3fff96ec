"""``GET /api/v1/search?q=...``: my conversations' titles and messages, ranked, with snippets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Cursor, Page
from avocado.platform.search.schemas import Filters, SearchHit

__all__ = ["search_router"]

search_router = APIRouter(prefix="/api/v1", tags=["search"], responses=error_responses(401, 422))


@search_router.get("/search")
def search(
    user: CurrentUser,
    platform: Services,
    q: Annotated[str, Query(min_length=1, max_length=200, description="words; the last may be a prefix")],
    folder_id: Annotated[str | None, Query(max_length=36)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool | None = None,
    pinned: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[SearchHit]:
    """Every word must match; titles first, then messages by rank. Filters narrow by conversation."""
    filters = Filters(folder_id, tag, model, archived, pinned, since, until)
    return platform.search.search(user.id, q, filters, cursor, limit)
