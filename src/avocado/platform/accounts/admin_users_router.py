"""``/api/v1/admin/users*``: administrators list, make, approve, disable and promote accounts, hand
out reset links, turn a user's two-factor sign-in off and sign them out everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.password_reset_router import reset_url
from avocado.platform.accounts.records import UserRecord, user_public
from avocado.platform.accounts.schemas import (
    AdminUserCreate,
    AdminUserUpdate,
    ResetLinkPublic,
    Status,
    UserPublic,
)
from avocado.platform.deps import AdminUser, ClientInfo, Services
from avocado.platform.errors import NotFound, error_responses
from avocado.platform.pages import Cursor, Limit, Page
from avocado.platform.state import Platform

__all__ = ["admin_users_router"]

admin_users_router = APIRouter(
    prefix="/api/v1/admin/users", tags=["admin"], responses=error_responses(401, 403)
)


async def _target(platform: Platform, user_id: str) -> UserRecord:
    user = await run_in_threadpool(platform.accounts.get, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


@admin_users_router.get("")
async def list_users(
    admin: AdminUser,
    platform: Services,
    status: Status | None = None,
    q: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[UserPublic]:
    """Accounts, oldest first; ``status`` filters (``pending``: those waiting for approval), ``q``
    searches e-mail and name."""
    rows, next_cursor = await run_in_threadpool(platform.accounts.list_users, status, q, cursor, limit)
    return Page(items=[user_public(row) for row in rows], next_cursor=next_cursor)


@admin_users_router.post("", status_code=201, responses=error_responses(409, 422))
async def create_user(
    body: AdminUserCreate, admin: AdminUser, platform: Services, client: ClientInfo
) -> UserPublic:
    user = await run_in_threadpool(
        lambda: platform.accounts.create_user(
            body.email, body.password, body.name, body.role, body.status, actor_id=admin.id, client=client
        )
    )
    return user_public(user)


@admin_users_router.get("/{user_id}", responses=error_responses(404))
async def get_user(user_id: str, admin: AdminUser, platform: Services) -> UserPublic:
    return user_public(await _target(platform, user_id))


@admin_users_router.patch("/{user_id}", responses=error_responses(404, 409, 422))
async def update_user(
    user_id: str, body: AdminUserUpdate, admin: AdminUser, platform: Services, client: ClientInfo
) -> UserPublic:
    """Approve (``status: active``), disable (every session ends) or change a role; the last active
    admin keeps their role and status."""
    user = await run_in_threadpool(
        lambda: platform.accounts.update_user(
            user_id, role=body.role, status=body.status, actor_id=admin.id, client=client
        )
    )
    return user_public(user)


@admin_users_router.post("/{user_id}/reset-link", responses=error_responses(404))
async def issue_reset_link(
    user_id: str, admin: AdminUser, platform: Services, client: ClientInfo
) -> ResetLinkPublic:
    """A one-time password reset link to hand to the user (it expires after ``reset_ttl``)."""
    token, expires = await run_in_threadpool(
        lambda: platform.accounts.issue_reset(user_id, actor_id=admin.id, client=client)
    )
    return ResetLinkPublic(url=reset_url(platform, token), expires_at=expires)


@admin_users_router.delete("/{user_id}/mfa", status_code=204, responses=error_responses(404))
async def reset_user_mfa(user_id: str, admin: AdminUser, platform: Services, client: ClientInfo) -> Response:
    """Turn a user's two-factor sign-in off (a lost authenticator and recovery codes)."""
    await run_in_threadpool(lambda: platform.accounts.reset_mfa(user_id, actor_id=admin.id, client=client))
    return Response(status_code=204)


@admin_users_router.delete("/{user_id}/sessions", status_code=204, responses=error_responses(404))
async def sign_user_out(user_id: str, admin: AdminUser, platform: Services, client: ClientInfo) -> Response:
    await _target(platform, user_id)
    await run_in_threadpool(lambda: platform.accounts.revoke_all(user_id, actor_id=admin.id, client=client))
    return Response(status_code=204)
