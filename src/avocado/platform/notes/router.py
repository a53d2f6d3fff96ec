"""``/api/v1/notes``: my notes, standalone or attached to a conversation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from avocado.platform.deps import CurrentUser, Services
from avocado.platform.errors import error_responses
from avocado.platform.notes.schemas import NoteCreate, NotePublic, NoteUpdate
from avocado.platform.pages import Cursor, Limit, Page

__all__ = ["notes_router"]

notes_router = APIRouter(prefix="/api/v1/notes", tags=["notes"], responses=error_responses(401, 404, 422))


@notes_router.get("")
def list_notes(
    user: CurrentUser,
    platform: Services,
    conversation_id: Annotated[str | None, Query(max_length=36)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[NotePublic]:
    return platform.notes.page(user.id, conversation_id, cursor, limit)


@notes_router.post("", status_code=201)
def create_note(body: NoteCreate, user: CurrentUser, platform: Services) -> NotePublic:
    return platform.notes.create(user.id, body.title, body.content, body.conversation_id)


@notes_router.get("/{note_id}")
def get_note(note_id: str, user: CurrentUser, platform: Services) -> NotePublic:
    return platform.notes.get(user.id, note_id)


@notes_router.patch("/{note_id}")
def update_note(note_id: str, body: NoteUpdate, user: CurrentUser, platform: Services) -> NotePublic:
    return platform.notes.update(user.id, note_id, body.model_dump(exclude_unset=True))


@notes_router.delete("/{note_id}", status_code=204)
def delete_note(note_id: str, user: CurrentUser, platform: Services) -> Response:
    platform.notes.delete(user.id, note_id)
    return Response(status_code=204)
