"""``POST /api/v1/temporary-chat``: a chat that is never stored, never searchable, gone when closed.

The client keeps the turns and sends them all with each message; the answer streams with the same
events as a stored chat (``start``, ``delta``, ``done`` or ``failed``), written while the client
listens: one that leaves ends it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from avocado.platform.conversations.context import Turn, budget_for, estimate, fit
from avocado.platform.conversations.live import Event
from avocado.platform.conversations.schemas import TemporaryChat
from avocado.platform.conversations.upstream import ChatUpstream, Ending, UpstreamFailure
from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses

__all__ = ["temporary_router"]

temporary_router = APIRouter(prefix="/api/v1", tags=["conversations"], responses=error_responses(401, 422))


async def _answer(upstream: ChatUpstream, body: TemporaryChat, user_id: str) -> AsyncIterator[bytes]:
    mid = f"temporary-{uuid.uuid4()}"
    options = body.options.model_dump(exclude_none=True)
    turns = [Turn(str(n), t.role, t.content, n, estimate(t.content)) for n, t in enumerate(body.messages)]
    kept = fit(turns, budget_for(options, body.system))
    history = [{"role": "system", "content": body.system}] if body.system else []
    history += [{"role": turn.role, "content": turn.content} for turn in kept]
    yield Event("start", {"assistant_message_ids": [mid], "temporary": True}, f"{mid}:0").encode()
    text = ""
    try:
        async for piece in upstream.stream(body.model, history, options, user_id):
            if isinstance(piece, Ending):
                done: dict[str, Any] = {"id": mid, "role": "assistant", "content": text, "status": "done"}
                done |= {"model": body.model, "usage": piece.usage, "done_reason": piece.done_reason}
                yield Event("done", done, f"{mid}:end").encode()
                return
            yield Event(
                "delta", {"message_id": mid, "content": piece}, f"{mid}:{len(text) + len(piece)}"
            ).encode()
            text += piece
    except UpstreamFailure as exc:
        yield Event("failed", {"message_id": mid, "detail": str(exc)}, f"{mid}:end").encode()


@temporary_router.post(
    "/temporary-chat",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "start, delta, done or failed"}},
)
async def temporary_chat(body: TemporaryChat, user: CurrentUser, platform: Services) -> StreamingResponse:
    """Answer the last turn of a chat that is not stored anywhere."""
    await platform.models.check(user.id, [body.model])
    events = _answer(platform.generations.upstream, body, user.id)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
