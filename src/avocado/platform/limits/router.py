"""``/api/v1/users/me/limits`` (my limits and what I use) and the administration of limits:
``/api/v1/admin/limits`` (each role's) and ``/api/v1/admin/users/{id}/limits`` (a user's override)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from avocado.platform.deps import AdminUser, ClientInfo, CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.limits.schemas import (
    LimitsUsage,
    LimitValues,
    MyLimits,
    RoleDefaults,
    RoleDefaultsUpdate,
    UserLimitsPublic,
)
from avocado.platform.limits.service import UserLimits

__all__ = ["limits_router"]

limits_router = APIRouter(prefix="/api/v1", tags=["limits"], responses=error_responses(401))
_ADMIN = error_responses(403)


@limits_router.get("/users/me/limits")
async def my_limits(user: CurrentUser, platform: Services) -> MyLimits:
    """The limits that apply to me (my own where an administrator set them, else my role's) and
    what I use now."""
    effective = await platform.limits.effective(user)
    used, reset_at = await platform.limits.usage(user)
    usage = LimitsUsage(
        requests_last_minute=used.requests_last_minute,
        concurrent_requests=used.concurrent_requests,
        tokens_today=used.tokens_today,
        tokens_reset_at=reset_at,
    )
    return MyLimits(limits=effective, usage=usage)


@limits_router.get("/admin/limits", tags=["admin"], responses=_ADMIN)
async def role_limits(admin: AdminUser, platform: Services) -> RoleDefaults:
    return await run_in_threadpool(platform.limits.role_defaults)


@limits_router.put("/admin/limits", tags=["admin"], responses={**_ADMIN, **error_responses(422)})
async def set_role_limits(
    body: RoleDefaultsUpdate, admin: AdminUser, platform: Services, client: ClientInfo
) -> RoleDefaults:
    """Replace the limits of each role given (a field left out: no limit); audited."""
    changes = {role: values for role in ("admin", "user") if (values := getattr(body, role)) is not None}
    return await run_in_threadpool(
        lambda: platform.limits.set_role_defaults(changes, actor_id=admin.id, address=client.address)
    )


def _public(limits: UserLimits) -> UserLimitsPublic:
    return UserLimitsPublic(
        user_id=limits.user_id,
        role=limits.role,  # type: ignore[arg-type]
        override=limits.override,
        defaults=limits.defaults,
        effective=limits.effective,
        updated_at=limits.updated_at,
    )


@limits_router.get("/admin/users/{user_id}/limits", tags=["admin"], responses=error_responses(403, 404))
async def user_limits(user_id: str, admin: AdminUser, platform: Services) -> UserLimitsPublic:
    return _public(await run_in_threadpool(platform.limits.of_user, user_id))


@limits_router.put("/admin/users/{user_id}/limits", tags=["admin"], responses=error_responses(403, 404, 422))
async def set_user_limits(
    user_id: str, body: LimitValues, admin: AdminUser, platform: Services, client: ClientInfo
) -> UserLimitsPublic:
    """Make the fields given this user's own limits (``null``: no limit for them); the fields left
    out follow their role. Replaces the previous override; audited."""
    values = body.model_dump(include=body.model_fields_set)
    limits = await run_in_threadpool(
        lambda: platform.limits.set_override(user_id, values, actor_id=admin.id, address=client.address)
    )
    return _public(limits)


@limits_router.delete(
    "/admin/users/{user_id}/limits", status_code=204, tags=["admin"], responses=error_responses(403, 404)
)
async def clear_user_limits(
    user_id: str, admin: AdminUser, platform: Services, client: ClientInfo
) -> Response:
    """The user follows their role's limits again."""
    await run_in_threadpool(
        lambda: platform.limits.clear_override(user_id, actor_id=admin.id, address=client.address)
    )
    return Response(status_code=204)
