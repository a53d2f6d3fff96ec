"""``/api/v1/users/me``, ``/me/avatar``, ``/me/preferences``, ``/me/password``: my account (my
name, deleting it), my picture (and anyone's, for signed-in users), my preferences, my password."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.attempts import reserve_attempt, sign_in_rules
from avocado.platform.accounts.avatars import AVATAR_TYPES, MAX_AVATAR_BYTES, AvatarRecord, image_type
from avocado.platform.accounts.errors import WrongPassword
from avocado.platform.accounts.preferences import PreferenceRecord
from avocado.platform.accounts.records import user_public
from avocado.platform.accounts.schemas import (
    AccountDelete,
    AvatarPublic,
    PasswordChange,
    PreferencesPublic,
    PreferencesUpdate,
    UserPublic,
    UserUpdate,
)
from avocado.platform.deps import ClientInfo, CurrentUser, PrincipalDep, Services
from avocado.platform.errors import NotFound, PlatformError, error_responses

__all__ = ["profile_router"]

profile_router = APIRouter()


# -- my account -------------------------------------------------------------------------------------


@profile_router.get("/me")
async def me(user: CurrentUser) -> UserPublic:
    return user_public(user)


@profile_router.patch("/me", responses=error_responses(422))
async def update_me(body: UserUpdate, user: CurrentUser, platform: Services) -> UserPublic:
    if body.name is None:
        return user_public(user)
    return user_public(await run_in_threadpool(platform.accounts.rename, user.id, body.name))


@profile_router.delete("/me", status_code=204, responses=error_responses(403, 409, 422, 429))
async def delete_me(
    body: AccountDelete, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    """Delete my account and all my data (sessions, API keys, two-factor, preferences); the
    password is needed. The last active administrator cannot (make another one first)."""
    rules = sign_in_rules(platform, user.email, client.address)
    await reserve_attempt(platform, rules)
    try:
        await run_in_threadpool(
            functools.partial(
                platform.accounts.delete_account,
                user.id,
                body.password,
                client,
                confirm_email=body.confirm_email,
            )
        )
    except WrongPassword:
        raise  # already counted
    except BaseException:
        await platform.throttle.release(rules)
        raise
    await platform.throttle.release(rules)
    return Response(status_code=204)


# -- avatars ----------------------------------------------------------------------------------------

AVATAR_MAX_AGE = 60  # seconds a browser may show an avatar before asking again (with its ETag)


def _avatar_public(user_id: str, record: AvatarRecord) -> AvatarPublic:
    return AvatarPublic(
        content_type=record.content_type,
        size=record.size,
        updated_at=record.updated_at,
        url=f"/api/v1/users/{user_id}/avatar",
    )


@profile_router.put("/me/avatar", responses=error_responses(413, 415, 422))
async def put_avatar(
    file: Annotated[UploadFile, File(description="A PNG, JPEG, WebP or GIF image, at most 512 KiB")],
    user: CurrentUser,
    platform: Services,
) -> AvatarPublic:
    """Set my avatar (multipart/form-data, the image in ``file``). The type is read from the image
    itself: anything but PNG, JPEG, WebP or GIF is a ``415``, more than 512 KiB a ``413``."""
    data = await file.read(MAX_AVATAR_BYTES + 1)
    if len(data) > MAX_AVATAR_BYTES:
        raise PlatformError(f"file: the image is larger than {MAX_AVATAR_BYTES // 1024} KiB", status=413)
    kind = image_type(data)
    if kind is None:
        allowed = ", ".join(t.removeprefix("image/").upper() for t in AVATAR_TYPES)
        raise PlatformError(f"file: not an image this takes ({allowed})", status=415)
    record = await run_in_threadpool(platform.avatars.put, user.id, data, kind)
    return _avatar_public(user.id, record)


@profile_router.delete("/me/avatar", status_code=204)
async def delete_avatar(user: CurrentUser, platform: Services) -> Response:
    """Remove my avatar (done already when there is none)."""
    await run_in_threadpool(platform.avatars.delete, user.id)
    return Response(status_code=204)


@profile_router.get(
    "/{user_id}/avatar",
    response_class=Response,
    responses={
        **error_responses(404),
        200: {"description": "The image", "content": {kind: {} for kind in AVATAR_TYPES}},
        304: {"description": "Not modified since the ETag given in If-None-Match"},
    },
)
async def get_avatar(user_id: str, request: Request, user: CurrentUser, platform: Services) -> Response:
    """A user's avatar, for signed-in users (``me``: mine); ``404`` when they have none."""
    owner = user.id if user_id == "me" else user_id
    record = await run_in_threadpool(platform.avatars.get, owner) if len(owner) <= 36 else None
    if record is None:
        raise NotFound("no avatar")
    etag = f'"{record.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={AVATAR_MAX_AGE}",
        "Last-Modified": record.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Vary": "Authorization",
    }
    wanted = [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(record.data, media_type=record.content_type, headers=headers)


# -- preferences ------------------------------------------------------------------------------------


def _preferences_public(record: PreferenceRecord) -> PreferencesPublic:
    return PreferencesPublic(
        default_model=record.default_model,
        system_prompt=record.system_prompt,
        theme=record.theme,  # type: ignore[arg-type]
    )


@profile_router.get("/me/preferences")
async def my_preferences(user: CurrentUser, platform: Services) -> PreferencesPublic:
    return _preferences_public(await run_in_threadpool(platform.preferences.get, user.id))


@profile_router.patch("/me/preferences", responses=error_responses(422))
async def update_preferences(
    body: PreferencesUpdate, user: CurrentUser, platform: Services
) -> PreferencesPublic:
    """Change the fields given. A ``default_model`` must be one of the models I may use now."""
    changes = body.model_dump(include=body.model_fields_set)
    model = changes.get("default_model")
    if model is not None:
        names = {entry.name for entry in await platform.catalog.models(user.id)}
        if model not in names and f"{model}:latest" not in names:
            raise PlatformError(f"default_model: '{model}' is not a model you can use", status=422)
    return _preferences_public(await run_in_threadpool(platform.preferences.update, user.id, changes))


# -- password ---------------------------------------------------------------------------------------


@profile_router.post("/me/password", status_code=204, responses=error_responses(403, 422, 429))
async def change_password(
    body: PasswordChange, user: CurrentUser, principal: PrincipalDep, platform: Services, client: ClientInfo
) -> Response:
    """Change my password (the current one is needed); my other sessions end."""
    rules = sign_in_rules(platform, user.email, client.address)
    await reserve_attempt(platform, rules)
    try:
        await run_in_threadpool(
            platform.accounts.change_password,
            user.id,
            principal.session_id,
            body.current_password,
            body.new_password,
            client,
        )
    except WrongPassword:
        raise  # already counted
    except BaseException:
        await platform.throttle.release(rules)
        raise
    await platform.throttle.release(rules)
    return Response(status_code=204)
