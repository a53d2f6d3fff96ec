"""Export and import: ``GET /api/v1/conversations/export`` (all mine), ``GET .../{id}/export``,
``POST /api/v1/conversations/import`` (ours, or Open WebUI's export)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Body, Response
from fastapi.responses import StreamingResponse

from avocado.platform.conversations.schemas import ConversationPublic
from avocado.platform.conversations.transfer import FORMAT, VERSION, to_markdown
from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.pages import Page

__all__ = ["transfer_router"]

transfer_router = APIRouter(
    prefix="/api/v1/conversations", tags=["conversations"], responses=error_responses(401, 404, 422)
)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@transfer_router.get("/export", response_class=StreamingResponse)
def export_all(
    user: CurrentUser, platform: Services, format: Literal["json", "markdown"] = "json"
) -> StreamingResponse:
    """All my conversations as our JSON (every branch), or as Markdown (the branch shown of each, one
    after the other), written as it is read."""
    if format == "markdown":

        def pages() -> Iterator[bytes]:
            for index, item in enumerate(platform.transfer.export_all(user.id)):
                yield ("\n---\n\n" if index else "").encode() + to_markdown(item).encode()

        return StreamingResponse(
            pages(), media_type="text/markdown; charset=utf-8", headers=_attachment("conversations.md")
        )

    def body() -> Iterator[bytes]:
        yield f'{{"format":"{FORMAT}","version":{VERSION},"conversations":['.encode()
        for index, item in enumerate(platform.transfer.export_all(user.id)):
            yield (b"," if index else b"") + json.dumps(item, default=str).encode()
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json", headers=_attachment("conversations.json"))


@transfer_router.post("/import", status_code=201, responses=error_responses(413))
def import_conversations(
    user: CurrentUser, platform: Services, payload: Any = Body(description="our export, or Open WebUI's")
) -> Page[ConversationPublic]:
    """New conversations of mine from an export (ours, or Open WebUI's), branches kept."""
    return Page(items=platform.transfer.import_any(user.id, payload), next_cursor=None)


@transfer_router.get("/{conversation_id}/export")
def export_one(
    conversation_id: str, user: CurrentUser, platform: Services, format: Literal["json", "markdown"] = "json"
) -> Response:
    """One conversation: JSON (lossless) or Markdown (the branch shown)."""
    exported = platform.transfer.export_one(user.id, conversation_id)
    if format == "markdown":
        text = to_markdown(exported["conversations"][0])
        return Response(
            text, media_type="text/markdown; charset=utf-8", headers=_attachment("conversation.md")
        )
    return Response(
        json.dumps(exported, default=str),
        media_type="application/json",
        headers=_attachment("conversation.json"),
    )
