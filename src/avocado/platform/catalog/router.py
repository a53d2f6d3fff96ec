"""``GET /api/v1/models``: the models this user may see (their limits' ``models`` patterns), in
keyset pages (by name)."""

from __future__ import annotations

from fastapi import APIRouter

from avocado.platform.catalog.schemas import ModelPublic
from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Cursor, Limit, Page, decode_cursor, encode_cursor

__all__ = ["catalog_router"]

catalog_router = APIRouter(prefix="/api/v1", tags=["models"], responses=error_responses(401))


@catalog_router.get("/models", responses={502: {"description": "The model server failed or is unreachable"}})
async def list_models(
    user: CurrentUser, platform: Services, cursor: Cursor = None, limit: Limit = 100
) -> Page[ModelPublic]:
    models = await platform.limits.visible(user, await platform.catalog.models(user.id), lambda m: m.name)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (str,))
        models = [model for model in models if model.name > after]
    page = models[:limit]
    more = len(models) > limit
    return Page(items=page, next_cursor=encode_cursor([page[-1].name]) if more else None)
