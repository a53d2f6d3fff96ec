"""Share links: make one for a conversation, list and revoke mine, open one (signed in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Page
from avocado.platform.sharing.schemas import ShareCreated, SharedConversation, SharePublic

__all__ = ["sharing_router"]

sharing_router = APIRouter(prefix="/api/v1", tags=["sharing"], responses=error_responses(401, 404, 422))


@sharing_router.post("/conversations/{conversation_id}/shares", status_code=201)
def share_conversation(
    conversation_id: str, user: CurrentUser, platform: Services, request: Request
) -> ShareCreated:
    """A read-only link to the conversation as it is now (later messages are not shared)."""
    base = platform.settings.public_url or str(request.base_url)
    return platform.shares.share(user.id, conversation_id, base)


@sharing_router.get("/conversations/{conversation_id}/shares")
def list_shares(conversation_id: str, user: CurrentUser, platform: Services) -> Page[SharePublic]:
    return Page(items=platform.shares.list(user.id, conversation_id), next_cursor=None)


@sharing_router.delete("/shares/{share_id}", status_code=204)
def revoke_share(share_id: str, user: CurrentUser, platform: Services) -> Response:
    """The link stops working at once."""
    platform.shares.revoke(user.id, share_id)
    return Response(status_code=204)


@sharing_router.get("/shared/{token}")
def open_share(
    token: Annotated[str, Path(max_length=64)], user: CurrentUser, platform: Services
) -> SharedConversation:
    """A shared conversation, for any signed-in user with the link."""
    return platform.shares.open(token)
