"""``/api/v1/admin/audit`` (the security log, filtered and paged) and ``/api/v1/admin/settings``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from avocado.platform.admin.schemas import AuditEventPublic, SettingsPublic, SettingsUpdate
from avocado.platform.admin.service import AuditFilter
from avocado.platform.deps import AdminUser, ClientInfo, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Cursor, Limit, Page

__all__ = ["admin_router"]

admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=error_responses(401, 403))

Id = Annotated[str | None, Query(max_length=36)]


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC (the audit log's own zone), not refused."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@admin_router.get("/audit", responses=error_responses(422))
async def audit_log(
    admin: AdminUser,
    platform: Services,
    action: Annotated[str | None, Query(max_length=64, description="e.g. signin.failed")] = None,
    actor_id: Id = None,
    subject_id: Id = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[AuditEventPublic]:
    """Security events, newest first: sign-ins, password changes and resets, role and status
    changes, session revocations, refresh-token reuse, settings changes."""
    where = AuditFilter(action, actor_id, subject_id, _utc(since), _utc(until))
    rows, next_cursor = await run_in_threadpool(platform.audit.page, where, cursor, limit)
    return Page(
        items=[AuditEventPublic.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=next_cursor,
    )


@admin_router.get("/settings")
async def get_settings(admin: AdminUser, platform: Services) -> SettingsPublic:
    return SettingsPublic(**await run_in_threadpool(platform.site.all))


@admin_router.patch("/settings", responses=error_responses(422))
async def update_settings(
    body: SettingsUpdate, admin: AdminUser, platform: Services, client: ClientInfo
) -> SettingsPublic:
    """Change settings; each change is audited with its old and new value."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("signup_policy", "") is None:
        del changes["signup_policy"]  # a policy cannot be turned off
    values = await run_in_threadpool(
        lambda: platform.site.update(changes, actor_id=admin.id, address=client.address)
    )
    return SettingsPublic(**values)


@admin_router.post("/retention/run")
async def run_retention(admin: AdminUser, platform: Services) -> dict[str, int]:
    """Apply the retention settings now (the background job does every hour); what it removed."""
    return await run_in_threadpool(platform.retention.apply)
