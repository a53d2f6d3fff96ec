"""``/api/v1/users/me/api-keys*``: my personal API keys for ``/v1``
(:mod:`~avocado.platform.accounts.apikeys`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.apikeys import KeyRecord
from avocado.platform.accounts.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from avocado.platform.deps import ClientInfo, CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Cursor, Limit, Page

__all__ = ["api_keys_router"]

api_keys_router = APIRouter()


def _key_public(record: KeyRecord) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
    )


@api_keys_router.post("/me/api-keys", status_code=201, responses=error_responses(409, 422))
async def create_api_key(
    body: ApiKeyCreate, user: CurrentUser, platform: Services, client: ClientInfo
) -> ApiKeyCreated:
    """A personal API key for ``/v1`` (OpenAI-compatible): ``key`` is shown this once."""
    record, secret = await run_in_threadpool(platform.keys.create, user.id, body.name, client)
    return ApiKeyCreated(**_key_public(record).model_dump(), key=secret)


@api_keys_router.get("/me/api-keys")
async def my_api_keys(
    user: CurrentUser, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[ApiKeyPublic]:
    """My live API keys, newest first (their secrets are not kept)."""
    rows, next_cursor = await run_in_threadpool(platform.keys.list, user.id, cursor, limit)
    return Page(items=[_key_public(row) for row in rows], next_cursor=next_cursor)


@api_keys_router.delete("/me/api-keys/{key_id}", status_code=204, responses=error_responses(404))
async def revoke_api_key(key_id: str, user: CurrentUser, platform: Services, client: ClientInfo) -> Response:
    await run_in_threadpool(platform.keys.revoke, user.id, key_id, client)
    return Response(status_code=204)
