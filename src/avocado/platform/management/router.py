"""``/api/v1/admin/gateway/*``: the gateway's nodes and usage per user, for administrators.

They need our gateway and its master key (``gateway_key``): in front of a node or a plain Ollama,
or with a key the gateway refuses, they answer ``404`` saying so, and ``GET /api/v1/auth/config``
says ``management: false`` so the web UI hides their pages.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from avocado.platform.deps import AdminUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.management.schemas import GatewayNodePublic, UsagePublic
from avocado.platform.management.service import UserUsage
from avocado.platform.pages import Cursor, Limit, Page, decode_cursor, encode_cursor

__all__ = ["management_router"]

management_router = APIRouter(
    prefix="/api/v1/admin/gateway", tags=["admin"], responses=error_responses(401, 403, 404)
)


def _node(entry: dict[str, Any]) -> GatewayNodePublic:
    fields = {name: entry.get(name) for name in GatewayNodePublic.model_fields if entry.get(name) is not None}
    fields.setdefault("url", "")
    fields.setdefault("healthy", False)
    fields.setdefault("models", [])
    return GatewayNodePublic.model_validate(fields)


@management_router.get("/nodes", responses=error_responses(422))
async def gateway_nodes(
    admin: AdminUser, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[GatewayNodePublic]:
    """The gateway's nodes by name: health, breaker, models, requests in flight, latency."""
    nodes = sorted((_node(entry) for entry in await platform.management.nodes()), key=lambda n: n.name)
    if cursor is not None:
        (after,) = decode_cursor(cursor, (str,))
        nodes = [node for node in nodes if node.name > after]
    page = nodes[:limit]
    more = len(nodes) > limit
    return Page(items=page, next_cursor=encode_cursor([page[-1].name]) if more else None)


def _order(row: UserUsage) -> tuple[int, str]:
    return (-row.requests, row.user_id)


@management_router.get("/usage", responses=error_responses(422))
async def gateway_usage(
    admin: AdminUser, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[UsagePublic]:
    """What the gateway metered per user (requests, tokens in and out), most requests first. The
    gateway writes its counts every few seconds, so the last moments may be missing."""
    rows = sorted(await platform.management.usage(), key=_order)
    if cursor is not None:
        requests, user_id = decode_cursor(cursor, (int, str))
        rows = [row for row in rows if _order(row) > (-requests, user_id)]
    page = rows[:limit]
    users = await run_in_threadpool(platform.accounts.get_many, [row.user_id for row in page])
    items = [
        UsagePublic(
            user_id=row.user_id,
            email=users[row.user_id].email if row.user_id in users else None,
            name=users[row.user_id].name if row.user_id in users else None,
            requests=row.requests,
            tokens_in=row.tokens_in,
            tokens_out=row.tokens_out,
            last_used_at=row.last_used_at,
        )
        for row in page
    ]
    more = len(rows) > limit
    return Page(
        items=items, next_cursor=encode_cursor([page[-1].requests, page[-1].user_id]) if more else None
    )
