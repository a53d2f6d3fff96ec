"""``/api/v1/users/me/sessions*``: where I am signed in, and ending one of those sessions or all."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.records import SessionRecord, describe_device
from avocado.platform.accounts.schemas import SessionPublic
from avocado.platform.deps import ClientInfo, CurrentUser, PrincipalDep, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Cursor, Limit, Page

__all__ = ["sessions_router"]

sessions_router = APIRouter()


def _session_public(record: SessionRecord, current: str) -> SessionPublic:
    return SessionPublic(
        id=record.id,
        device=describe_device(record.user_agent),
        user_agent=record.user_agent,
        address=record.address,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        expires_at=record.expires_at,
        current=record.id == current,
    )


@sessions_router.get("/me/sessions")
async def my_sessions(
    user: CurrentUser, principal: PrincipalDep, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[SessionPublic]:
    """Where I am signed in: device, address, last use."""
    rows, next_cursor = await run_in_threadpool(platform.accounts.list_sessions, user.id, cursor, limit)
    return Page(items=[_session_public(row, principal.session_id) for row in rows], next_cursor=next_cursor)


@sessions_router.delete("/me/sessions/{session_id}", status_code=204, responses=error_responses(404))
async def revoke_my_session(
    session_id: str, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    await run_in_threadpool(
        lambda: platform.accounts.revoke_session(user.id, session_id, actor_id=user.id, client=client)
    )
    return Response(status_code=204)


@sessions_router.delete("/me/sessions", status_code=204)
async def sign_out_everywhere(user: CurrentUser, platform: Services, client: ClientInfo) -> Response:
    """End all my sessions, this one included."""
    await run_in_threadpool(lambda: platform.accounts.revoke_all(user.id, actor_id=user.id, client=client))
    return Response(status_code=204)
