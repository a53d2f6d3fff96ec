"""``/api/v1/conversations`` and ``/api/v1/folders``: chats, their messages as a tree, streamed answers.

Sending a message answers with server-sent events: ``start`` (the new messages' ids), ``delta``
(``{message_id, content}``), then ``done`` (the stored answer, with ``usage``) or ``failed``
(``{message_id, detail}``) for each answer. Answers are written server-side: a client that leaves
and comes back follows the rest at ``GET .../messages/{mid}/stream`` (``Last-Event-ID`` honoured).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.service import UserRecord
from avocado.platform.conversations.errors import AnswerFinished, NoSuchMessage
from avocado.platform.conversations.generation import merged
from avocado.platform.conversations.live import Event, LiveAnswer, follow_local, offset_of
from avocado.platform.conversations.schemas import (
    ArchiveOlder,
    ConversationCreate,
    ConversationDetail,
    ConversationPublic,
    ConversationUpdate,
    FolderCreate,
    FolderPublic,
    FolderUpdate,
    ForkRequest,
    LeafRequest,
    MessagePublic,
    MessageSend,
    Regenerate,
)
from avocado.platform.conversations.sending import Planned, Prepared
from avocado.platform.deps import CurrentUser, PrincipalDep, Services, user_with_limits
from avocado.platform.errors import error_responses
from avocado.platform.limits.schemas import LimitValues
from avocado.platform.limits.service import Admission
from avocado.platform.pages import Cursor, Limit, Page, decode_cursor, encode_cursor
from avocado.platform.state import Platform

__all__ = ["conversations_router", "folders_router"]

conversations_router = APIRouter(
    prefix="/api/v1/conversations", tags=["conversations"], responses=error_responses(401, 404, 422)
)
folders_router = APIRouter(
    prefix="/api/v1/folders", tags=["folders"], responses=error_responses(401, 404, 422)
)

Id = Annotated[str, "a conversation or message id"]
EVENTS = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-sent events: start, delta, done or failed (each with an id)",
    },
    **error_responses(429),
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _events(first: Event | None, rest: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first.encode()
    async for event in rest:
        yield event.encode()


async def _admitted(
    platform: Platform, user: UserRecord, models: Sequence[str | None], effective: LimitValues | None = None
) -> list[Admission]:
    """One admission under the user's limits per answer to write (``429`` over one); ``None``: the
    model of the answer regenerated or continued, already checked when it was written.
    ``effective``: the user's limits, when this request has read them already."""
    held: list[Admission] = []
    try:
        for model in models:
            held.append(await platform.limits.admit(user, model, effective=effective).acquire())
    except BaseException:
        await _release(held)
        raise
    return held


async def _release(held: Sequence[Admission]) -> None:
    for admission in held:
        await admission.release()


async def _prepared(held: list[Admission], work: Callable[[], Prepared]) -> Prepared:
    """``work`` (which stores the messages) once admitted; the admissions go if it fails."""
    try:
        return await run_in_threadpool(work)
    except BaseException:
        await _release(held)
        raise


def _begun(prepared: Prepared, platform: Platform, held: Sequence[Admission]) -> StreamingResponse:
    """Start writing the answers and stream them; they go on if the client leaves."""
    return _stream(prepared, platform.generations.begin(prepared, held))


def _stream(prepared: Prepared, answers: Sequence[LiveAnswer]) -> StreamingResponse:
    """Stream answers being written: ``start``, then their events as they come."""
    start = Event(
        "start",
        {
            "conversation_id": prepared.conversation_id,
            "user_message_id": prepared.user_message.id if prepared.user_message else None,
            "assistant_message_ids": [answer.id for answer in prepared.answers],
            "user_message": prepared.user_message.model_dump(mode="json") if prepared.user_message else None,
            "assistant_messages": [answer.model_dump(mode="json") for answer in prepared.answers],
        },
        f"{prepared.answers[0].id}:{len(prepared.prefix)}",
    )
    follows = [follow_local(answer, len(prepared.prefix)) for answer in answers]
    rest = follows[0] if len(follows) == 1 else merged(follows)  # one answer: no queue between
    return StreamingResponse(_events(start, rest), media_type="text/event-stream", headers=SSE_HEADERS)


# -- conversations --------------------------------------------------------------------------------


@conversations_router.post("", status_code=201)
async def create_conversation(
    body: ConversationCreate, user: CurrentUser, platform: Services
) -> ConversationPublic:
    await platform.models.check(user, [body.model])
    return await run_in_threadpool(
        platform.conversations.create,
        user.id,
        body.model,
        title=body.title,
        system=body.system,
        options=body.options.model_dump(exclude_none=True),
        folder_id=body.folder_id,
        summarise=body.summarise,
    )


@conversations_router.get("")
def list_conversations(
    user: CurrentUser,
    platform: Services,
    archived: bool = False,
    folder_id: Annotated[str | None, Query(max_length=36)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ConversationPublic]:
    """Mine, pinned first, then the most recently active (archived ones with ``archived=true``)."""
    return platform.conversations.page(
        user.id, archived=archived, folder_id=folder_id, tag=tag, cursor=cursor, limit=limit
    )


@conversations_router.post("/archive")
def archive_older(body: ArchiveOlder, user: CurrentUser, platform: Services) -> dict[str, int]:
    """Archive every conversation of mine untouched for ``older_than_days`` days."""
    return {"archived": platform.conversations.archive_older(user.id, body.older_than_days)}


@conversations_router.get("/{conversation_id}")
def get_conversation(
    conversation_id: Id,
    user: CurrentUser,
    platform: Services,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ConversationDetail:
    """The conversation and the newest ``limit`` messages of its active path (older ones: ``/messages``)."""
    return platform.conversations.detail(user.id, conversation_id, limit)


@conversations_router.get("/{conversation_id}/messages")
def older_messages(
    conversation_id: Id,
    user: CurrentUser,
    platform: Services,
    cursor: Cursor = None,
    before: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Page[MessagePublic]:
    """The active path before message ``before`` (or the cursor), oldest first, a page at a time."""
    if cursor is not None:
        (before,) = decode_cursor(cursor, (str,))
    if before is None:
        detail = platform.conversations.detail(user.id, conversation_id, limit)
        items = detail.messages
    else:
        items = platform.conversations.older(user.id, conversation_id, before, limit)
    more = bool(items) and items[0].parent_id is not None
    return Page(items=items, next_cursor=encode_cursor([items[0].id]) if more else None)


@conversations_router.patch("/{conversation_id}")
async def update_conversation(
    conversation_id: Id, body: ConversationUpdate, user: CurrentUser, platform: Services
) -> ConversationPublic:
    """Rename, change model, system prompt or options, pin, archive, move to a folder, tag."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("model"):
        await platform.models.check(user, [changes["model"]])
    if "options" in changes:
        changes["options"] = body.options.model_dump(exclude_none=True) if body.options else {}
    return await run_in_threadpool(platform.conversations.update, user.id, conversation_id, changes)


@conversations_router.delete("/{conversation_id}", status_code=204)
def delete_conversation(conversation_id: Id, user: CurrentUser, platform: Services) -> Response:
    platform.conversations.delete(user.id, conversation_id)
    return Response(status_code=204)


@conversations_router.post("/{conversation_id}/fork", status_code=201)
def fork_conversation(
    conversation_id: Id, body: ForkRequest, user: CurrentUser, platform: Services
) -> ConversationPublic:
    """A new conversation with the path from the start to ``message_id``."""
    return platform.conversations.fork(user.id, conversation_id, body.message_id)


@conversations_router.put("/{conversation_id}/leaf")
def switch_branch(
    conversation_id: Id, body: LeafRequest, user: CurrentUser, platform: Services
) -> ConversationDetail:
    """Show the branch through ``message_id`` (a sibling picked in the branch switcher)."""
    return platform.conversations.set_leaf(user.id, conversation_id, body.message_id)


# -- messages -------------------------------------------------------------------------------------


@conversations_router.post("/{conversation_id}/messages", responses=EVENTS, response_class=StreamingResponse)
async def send_message(
    conversation_id: Id, body: MessageSend, principal: PrincipalDep, platform: Services
) -> StreamingResponse:
    """Send my message (to up to four models at once) and stream the answers as they are written."""

    def read() -> tuple[UserRecord, Planned, LimitValues]:
        """One trip to a worker thread, one session: each costs a few hundred microseconds before
        the answer. Nothing is written yet."""
        with platform.sessions() as session:
            user, effective = user_with_limits(platform, principal, session)
            planned = platform.conversations.plan(
                session, user.id, conversation_id, body.content, body.models, body.parent_id, body.edit_of
            )
            return user, planned, effective

    with platform.generations.sending() as others:
        user, planned, effective = await run_in_threadpool(read)
        models = list(planned.prepared.models.values())  # asked for, or the conversation's
        await platform.models.check(user, models, effective)
        held = await _admitted(platform, user, models, effective)
        if others():
            # Under a burst the rows first: answers begun now would run ahead of their clients,
            # who see nothing before the rows are stored, behind the other sends' writes
            prepared = await _prepared(held, functools.partial(platform.conversations.store, planned))
            return _begun(prepared, platform, held)
        # Alone: the answers start before their rows are stored, the model reads its prompt meanwhile
        answers = platform.generations.begin(planned.prepared, held, stored=False)
        try:
            await run_in_threadpool(platform.conversations.store, planned)
        except BaseException:
            platform.generations.abandon(answers)
            await _release(held)
            raise
    platform.generations.stored(answers)
    return _stream(planned.prepared, answers)


@conversations_router.post(
    "/{conversation_id}/messages/{message_id}/regenerate", responses=EVENTS, response_class=StreamingResponse
)
async def regenerate(
    conversation_id: Id, message_id: Id, user: CurrentUser, platform: Services, body: Regenerate | None = None
) -> StreamingResponse:
    """A new answer beside this one (a branch), by the same model or ``model``."""
    model = body.model if body else None
    effective = await platform.limits.effective(user)
    if model is not None:
        await platform.models.check(user, [model], effective)
    held = await _admitted(platform, user, [model], effective)
    prepared = await _prepared(
        held,
        functools.partial(platform.conversations.regenerate, user.id, conversation_id, message_id, model),
    )
    return _begun(prepared, platform, held)


@conversations_router.post(
    "/{conversation_id}/messages/{message_id}/continue",
    responses={**EVENTS, **error_responses(409)},
    response_class=StreamingResponse,
)
async def continue_answer(
    conversation_id: Id, message_id: Id, user: CurrentUser, platform: Services
) -> StreamingResponse:
    """Go on writing an answer where it ended (its length limit, a stop): the same message grows."""
    held = await _admitted(platform, user, [None])
    prepared = await _prepared(
        held, functools.partial(platform.conversations.resume, user.id, conversation_id, message_id)
    )
    return _begun(prepared, platform, held)


@conversations_router.get(
    "/{conversation_id}/messages/{message_id}/stream", responses=EVENTS, response_class=StreamingResponse
)
async def follow_answer(
    conversation_id: Id,
    message_id: Id,
    user: CurrentUser,
    platform: Services,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    """An answer from where the client left it (``Last-Event-ID``): what was written, then live."""
    message = await run_in_threadpool(platform.conversations.message, user.id, conversation_id, message_id)
    if message.role != "assistant":
        raise NoSuchMessage()
    events = platform.generations.follow(message_id, offset_of(last_event_id, message_id))
    return StreamingResponse(_events(None, events), media_type="text/event-stream", headers=SSE_HEADERS)


@conversations_router.post(
    "/{conversation_id}/messages/{message_id}/stop", responses=error_responses(409), status_code=200
)
async def stop_answer(
    conversation_id: Id, message_id: Id, user: CurrentUser, platform: Services, response: Response
) -> MessagePublic:
    """Stop an answer being written; what it wrote stays, marked ``stopped``. ``409`` when it is not
    being written. Written on another replica: ``202``, it stops there within a second."""
    message = await run_in_threadpool(platform.conversations.message, user.id, conversation_id, message_id)
    if message.role != "assistant":
        raise NoSuchMessage()
    answer = platform.generations.live.get(message_id)
    if answer is not None and answer.stop():
        for _ in range(100):
            if answer.final is not None:
                return answer.final
            await asyncio.sleep(0.05)
    if message.status != "generating":
        raise AnswerFinished(message.status)
    await run_in_threadpool(platform.conversations.request_stop, user.id, conversation_id, message_id)
    response.status_code = 202
    return await run_in_threadpool(platform.conversations.message, user.id, conversation_id, message_id)


# -- folders --------------------------------------------------------------------------------------


@folders_router.get("")
def list_folders(user: CurrentUser, platform: Services) -> Page[FolderPublic]:
    """All my folders (a tree by ``parent_id``), by name."""
    return Page(items=platform.folders.list(user.id), next_cursor=None)


@folders_router.post("", status_code=201)
def create_folder(body: FolderCreate, user: CurrentUser, platform: Services) -> FolderPublic:
    return platform.folders.create(user.id, body.name, body.parent_id)


@folders_router.patch("/{folder_id}", responses=error_responses(409))
def update_folder(folder_id: Id, body: FolderUpdate, user: CurrentUser, platform: Services) -> FolderPublic:
    """Rename, or move inside another folder (``parent_id``; ``null`` for the top)."""
    return platform.folders.update(user.id, folder_id, body.model_dump(exclude_unset=True))


@folders_router.delete("/{folder_id}", status_code=204)
def delete_folder(folder_id: Id, user: CurrentUser, platform: Services) -> Response:
    """Delete a folder and the folders inside; their conversations stay, out of any folder."""
    platform.folders.delete(user.id, folder_id)
    return Response(status_code=204)
