"""Feedback on an answer (``.../messages/{mid}/feedback``) and the admin's list and export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from avocado.platform.deps import AdminUser, CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.feedback.schemas import FeedbackExport, FeedbackGiven, FeedbackPublic
from avocado.platform.pages import Cursor, Limit, Page

__all__ = ["admin_feedback_router", "feedback_router"]

feedback_router = APIRouter(
    prefix="/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
    tags=["feedback"],
    responses=error_responses(401, 404, 422),
)
admin_feedback_router = APIRouter(
    prefix="/api/v1/admin/feedback", tags=["admin"], responses=error_responses(401, 403, 422)
)


@feedback_router.put("")
def give_feedback(
    conversation_id: str, message_id: str, body: FeedbackGiven, user: CurrentUser, platform: Services
) -> FeedbackPublic:
    """Up or down, with a reason and a comment; ``preferred`` when picked among side-by-side answers."""
    return platform.feedback.give(user.id, conversation_id, message_id, body)


@feedback_router.get("")
def get_feedback(
    conversation_id: str, message_id: str, user: CurrentUser, platform: Services
) -> FeedbackPublic:
    return platform.feedback.get(user.id, conversation_id, message_id)


@feedback_router.delete("", status_code=204)
def withdraw_feedback(
    conversation_id: str, message_id: str, user: CurrentUser, platform: Services
) -> Response:
    platform.feedback.withdraw(user.id, conversation_id, message_id)
    return Response(status_code=204)


@admin_feedback_router.get("")
def list_feedback(
    admin: AdminUser,
    platform: Services,
    rating: Literal["up", "down"] | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FeedbackExport]:
    """Everyone's feedback, newest first, with the exchange as it was."""
    return platform.feedback.page(rating, cursor, limit)


@admin_feedback_router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One feedback per line"}},
)
def export_feedback(admin: AdminUser, platform: Services) -> StreamingResponse:
    """All feedback as JSON Lines, oldest first (for evaluation or fine-tuning datasets)."""

    def lines() -> Iterator[bytes]:
        for item in platform.feedback.export():
            yield item.model_dump_json().encode() + b"\n"

    headers = {"Content-Disposition": 'attachment; filename="feedback.jsonl"'}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)
