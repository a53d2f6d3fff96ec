"""The accounts API: ``/api/v1/auth/*`` (sign-up, sign-in, tokens), ``/api/v1/users/me*`` (my account,
my sessions) and ``/api/v1/admin/users*`` (administrators).

Browsers keep the refresh token in an ``HttpOnly``, ``SameSite=Lax`` cookie scoped to
``/api/v1/auth`` (``Secure`` behind https) and send the access token as a bearer header like any
API client. A request that relies on the cookie must echo the ``avocado_csrf`` cookie (readable
by the page, not by other sites) in ``X-CSRF-Token``: the double-submit defence against
cross-site requests riding on the cookie.
"""

from __future__ import annotations

import functools
import hmac
import math
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.apikeys import KeyRecord
from avocado.platform.accounts.avatars import AVATAR_TYPES, MAX_AVATAR_BYTES, AvatarRecord, image_type
from avocado.platform.accounts.dependencies import bearer, principal_from
from avocado.platform.accounts.errors import InvalidCredentials, InvalidRefresh, WrongPassword
from avocado.platform.accounts.preferences import PreferenceRecord
from avocado.platform.accounts.schemas import (
    AccountDelete,
    AdminUserCreate,
    AdminUserUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    AuthConfig,
    AvatarPublic,
    LoginRequest,
    LogoutRequest,
    MfaChallenge,
    MfaCode,
    MfaDisable,
    MfaEnrolment,
    MfaLogin,
    MfaStatusPublic,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    PreferencesPublic,
    PreferencesUpdate,
    RecoveryCodes,
    RefreshRequest,
    RegisterRequest,
    ResetLinkPublic,
    SessionPublic,
    Status,
    TokenResponse,
    UserPublic,
    UserUpdate,
)
from avocado.platform.accounts.service import Client, SessionRecord, Tokens, UserRecord, describe_device
from avocado.platform.accounts.throttle import Rule
from avocado.platform.accounts.tokens import MFA_TTL, InvalidToken
from avocado.platform.deps import AdminUser, ClientInfo, CurrentUser, PrincipalDep, Services
from avocado.platform.errors import (
    Forbidden,
    NotFound,
    PlatformError,
    TooManyRequests,
    Unauthorized,
    error_responses,
)
from avocado.platform.pages import Cursor, Limit, Page
from avocado.platform.state import Platform

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "REFRESH_COOKIE",
    "admin_users_router",
    "auth_router",
    "users_router",
]

REFRESH_COOKIE = "avocado_refresh"
CSRF_COOKIE = "avocado_csrf"
CSRF_HEADER = "X-CSRF-Token"
AUTH_PATH = "/api/v1/auth"

auth_router = APIRouter(prefix=AUTH_PATH, tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=error_responses(401))
admin_users_router = APIRouter(
    prefix="/api/v1/admin/users", tags=["admin"], responses=error_responses(401, 403)
)


def public(user: UserRecord) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,  # type: ignore[arg-type]
        status=user.status,  # type: ignore[arg-type]
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        has_password=user.has_password,
    )


# -- cookies ----------------------------------------------------------------------------------------


def _secure(platform: Platform, request: Request) -> bool:
    if platform.settings.public_url is not None:
        return platform.settings.public_url.startswith("https://")
    return platform.proxies.scheme(request) == "https"


def _set_cookies(platform: Platform, request: Request, response: Response, refresh_token: str) -> None:
    secure, max_age = _secure(platform, request), int(platform.settings.refresh_ttl_seconds)
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=max_age,
        path=AUTH_PATH,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    csrf = secrets.token_urlsafe(24)  # new at every sign-in and refresh: a planted or leaked one dies
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path="/", httponly=False, samesite="lax", secure=secure
    )


def _clear_cookies(platform: Platform, request: Request, response: Response) -> None:
    secure = _secure(platform, request)
    response.delete_cookie(REFRESH_COOKIE, path=AUTH_PATH, httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)


def _cookie_token(request: Request) -> str:
    """The refresh cookie, once the request proves it comes from our page (double submit)."""
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise InvalidRefresh("no refresh token: send refresh_token, or sign in with cookie: true")
    expected, given = request.cookies.get(CSRF_COOKIE, ""), request.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden(
            f"missing or wrong CSRF token: send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}"
        )
    return token


def _tokens(
    platform: Platform, request: Request, response: Response, tokens: Tokens, cookie: bool
) -> TokenResponse:
    if cookie:
        _set_cookies(platform, request, response, tokens.refresh_token)
        return TokenResponse(access_token=tokens.access_token, expires_in=tokens.expires_in)
    return TokenResponse(
        access_token=tokens.access_token, expires_in=tokens.expires_in, refresh_token=tokens.refresh_token
    )


# -- sign-up and sign-in ----------------------------------------------------------------------------


@auth_router.get("/config")
async def auth_config(platform: Services) -> AuthConfig:
    """Public: the sign-up policy, and which optional features this platform offers (``management``:
    the gateway's nodes and usage, which need our gateway and its master key)."""
    values = await run_in_threadpool(platform.site.all)
    return AuthConfig(signup_policy=values["signup_policy"], management=await platform.management.available())


@auth_router.post("/register", status_code=201, responses=error_responses(403, 409, 422))
async def register(body: RegisterRequest, platform: Services, client: ClientInfo) -> UserPublic:
    """A new account: the first one is an active admin; then the sign-up policy decides."""
    user = await run_in_threadpool(platform.accounts.register, body.email, body.password, body.name, client)
    return public(user)


def _sign_in_rules(platform: Platform, email: str, address: str) -> list[Rule]:
    settings = platform.settings
    return [
        Rule(f"account:{email}", settings.login_free_attempts),
        Rule(f"address:{address}", settings.address_free_attempts),
    ]


async def _reserve_attempt(platform: Platform, rules: list[Rule]) -> None:
    """Count the attempt as failed before checking it (released if it is not): parallel attempts
    then see each other, where check-then-count let a burst through one check."""
    wait = await platform.throttle.reserve(rules)
    if wait > 0:
        seconds = math.ceil(wait)
        raise TooManyRequests(f"too many failed attempts: try again in {seconds} s", seconds)


@auth_router.post(
    "/login",
    response_model=TokenResponse | MfaChallenge,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 422, 429),
)
async def login(
    body: LoginRequest, request: Request, response: Response, platform: Services, client: ClientInfo
) -> TokenResponse | MfaChallenge:
    """Tokens for an e-mail and password. ``cookie: true`` puts the refresh token in a cookie. With
    two-factor sign-in on, the answer is ``{mfa_required: true, mfa_token}`` for ``POST /auth/mfa``."""
    rules = _sign_in_rules(platform, body.email, client.address)
    await _reserve_attempt(platform, rules)
    try:
        user = await run_in_threadpool(platform.accounts.authenticate, body.email, body.password, client)
    except InvalidCredentials:
        raise  # already counted
    except BaseException:
        await platform.throttle.release(rules)  # right password, refused otherwise: not a guess
        raise
    await platform.throttle.release(rules)
    await platform.throttle.succeeded(rules[0])
    if await run_in_threadpool(platform.mfa.enabled, user.id):
        token = platform.accounts.signer.issue_mfa(user.id, body.cookie)
        return MfaChallenge(mfa_token=token, expires_in=int(MFA_TTL))
    tokens = await run_in_threadpool(platform.accounts.start_session, user, client)
    return _tokens(platform, request, response, tokens, body.cookie)


def _mfa_rules(platform: Platform, user_id: str, address: str) -> list[Rule]:
    """Code attempts are limited like sign-ins: per account and per address."""
    settings = platform.settings
    return [
        Rule(f"mfa:{user_id}", settings.login_free_attempts),
        Rule(f"address:{address}", settings.address_free_attempts),
    ]


@auth_router.post("/mfa", response_model_exclude_none=True, responses=error_responses(401, 403, 422, 429))
async def mfa_login(
    body: MfaLogin, request: Request, response: Response, platform: Services, client: ClientInfo
) -> TokenResponse:
    """The second step of a sign-in: login's ``mfa_token`` and a TOTP code (or a recovery code)."""
    try:
        user_id, cookie = platform.accounts.signer.verify_mfa(body.mfa_token)
    except InvalidToken as exc:
        raise Unauthorized(f"{exc}: sign in again") from None
    rules = _mfa_rules(platform, user_id, client.address)
    await _reserve_attempt(platform, rules)
    if not await run_in_threadpool(platform.mfa.verify, user_id, body.code, client):
        raise Unauthorized("code: wrong or already used code")  # already counted
    await platform.throttle.release(rules)
    await platform.throttle.succeeded(rules[0])
    user = await run_in_threadpool(platform.accounts.get, user_id)
    if user is None or user.status != "active":
        raise Unauthorized("this account may not sign in now")
    tokens = await run_in_threadpool(platform.accounts.start_session, user, client)
    return _tokens(platform, request, response, tokens, cookie or body.cookie)


@auth_router.post(
    "/refresh",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 422),
)
async def refresh(
    request: Request,
    response: Response,
    platform: Services,
    client: ClientInfo,
    body: RefreshRequest | None = None,
) -> TokenResponse | JSONResponse:
    """A new token pair; the refresh token given (in the body, or the cookie) is spent."""
    from_cookie = body is None or body.refresh_token is None
    token = _cookie_token(request) if from_cookie else body.refresh_token  # type: ignore[union-attr]
    assert token is not None
    try:
        tokens = await run_in_threadpool(platform.accounts.refresh, token, client)
    except InvalidRefresh:
        if not from_cookie:
            raise
        # A dead cookie is of no use to the browser: drop it with the answer (a raised error would
        # lose the Set-Cookie headers).
        ended = InvalidRefresh("this session has ended: sign in again")
        answer = JSONResponse({"detail": ended.detail}, status_code=ended.status, headers=ended.headers)
        _clear_cookies(platform, request, answer)
        return answer
    return _tokens(platform, request, response, tokens, from_cookie)


@auth_router.post("/logout", status_code=204, responses=error_responses(403, 422))
async def logout(
    request: Request, platform: Services, client: ClientInfo, body: LogoutRequest | None = None
) -> Response:
    """End a session: the one of the refresh token given, of the cookie, or of the bearer token."""
    response = Response(status_code=204)
    token = body.refresh_token if body is not None else None
    if token is None and request.cookies.get(REFRESH_COOKIE):
        token = _cookie_token(request)
    if request.cookies.get(REFRESH_COOKIE) or request.cookies.get(CSRF_COOKIE):
        _clear_cookies(platform, request, response)  # whichever way the session ended
    if token is not None:
        owner = await run_in_threadpool(platform.accounts.session_of_refresh, token)
        if owner is not None:
            await run_in_threadpool(platform.accounts.sign_out, owner[1], owner[0], client)
        return response
    principal = principal_from(request, await bearer(request))
    await run_in_threadpool(platform.accounts.sign_out, principal.user_id, principal.session_id, client)
    return response


@auth_router.post("/password-reset/request", status_code=202, responses=error_responses(422, 429))
async def request_reset(body: PasswordResetRequest, platform: Services, client: ClientInfo) -> dict[str, str]:
    """Mail a reset link if the address has an account and mail is set up; the answer is the same
    either way (no account enumeration)."""
    rules = [Rule(f"reset:{client.address}", platform.settings.login_free_attempts)]
    await _reserve_attempt(platform, rules)  # every request counts: a mailbox is not to be flooded
    await platform.jobs.send_reset(body.email, client.address, client.user_agent)
    return {"detail": "if this address has an account, a reset link is on its way"}


@auth_router.post("/password-reset", status_code=204, responses=error_responses(400, 422))
async def reset_password(body: PasswordResetConfirm, platform: Services, client: ClientInfo) -> Response:
    """Set a new password with a reset link's token; every session of the account ends."""
    await run_in_threadpool(platform.accounts.reset_password, body.token, body.password, client)
    return Response(status_code=204)


def reset_url(platform: Platform, token: str) -> str:
    """The link a person opens; the token rides in the fragment, which browsers never send to servers."""
    return f"{platform.settings.base_url}/reset-password#token={token}"


def reset_link(
    platform: Platform, email: str, address: str, user_agent: str
) -> tuple[str, str, datetime] | None:
    """A reset job's link for ``email``: made in the worker, only for an account that may have one."""
    user = platform.accounts.find(email)
    if user is None or user.status == "disabled":
        return None
    client = Client(address=address, user_agent=user_agent)
    token, expires = platform.accounts.issue_reset(user.id, actor_id=None, client=client)
    return user.email, reset_url(platform, token), expires


# -- my account -------------------------------------------------------------------------------------


@users_router.get("/me")
async def me(user: CurrentUser) -> UserPublic:
    return public(user)


@users_router.patch("/me", responses=error_responses(422))
async def update_me(body: UserUpdate, user: CurrentUser, platform: Services) -> UserPublic:
    if body.name is None:
        return public(user)
    return public(await run_in_threadpool(platform.accounts.rename, user.id, body.name))


@users_router.delete("/me", status_code=204, responses=error_responses(403, 409, 422, 429))
async def delete_me(
    body: AccountDelete, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    """Delete my account and all my data (sessions, API keys, two-factor, preferences); the
    password is needed. The last active administrator cannot (make another one first)."""
    rules = _sign_in_rules(platform, user.email, client.address)
    await _reserve_attempt(platform, rules)
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


@users_router.put("/me/avatar", responses=error_responses(413, 415, 422))
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


@users_router.delete("/me/avatar", status_code=204)
async def delete_avatar(user: CurrentUser, platform: Services) -> Response:
    """Remove my avatar (done already when there is none)."""
    await run_in_threadpool(platform.avatars.delete, user.id)
    return Response(status_code=204)


@users_router.get(
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


def _preferences_public(record: PreferenceRecord) -> PreferencesPublic:
    return PreferencesPublic(
        default_model=record.default_model,
        system_prompt=record.system_prompt,
        theme=record.theme,  # type: ignore[arg-type]
    )


@users_router.get("/me/preferences")
async def my_preferences(user: CurrentUser, platform: Services) -> PreferencesPublic:
    return _preferences_public(await run_in_threadpool(platform.preferences.get, user.id))


@users_router.patch("/me/preferences", responses=error_responses(422))
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


@users_router.post("/me/password", status_code=204, responses=error_responses(403, 422, 429))
async def change_password(
    body: PasswordChange, user: CurrentUser, principal: PrincipalDep, platform: Services, client: ClientInfo
) -> Response:
    """Change my password (the current one is needed); my other sessions end."""
    rules = _sign_in_rules(platform, user.email, client.address)
    await _reserve_attempt(platform, rules)
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


def _session_public(record: SessionRecord, current: str) -> SessionPublic:
    return SessionPublic(
        id=record.id,
        device=describe_device(record.user_agent),
        user_agent=record.user_agent,
        address=record.address,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        expires_at=record.expires_at,
        current=record.id == current,
    )


@users_router.get("/me/sessions")
async def my_sessions(
    user: CurrentUser, principal: PrincipalDep, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[SessionPublic]:
    """Where I am signed in: device, address, last use."""
    rows, next_cursor = await run_in_threadpool(platform.accounts.list_sessions, user.id, cursor, limit)
    return Page(items=[_session_public(row, principal.session_id) for row in rows], next_cursor=next_cursor)


@users_router.delete("/me/sessions/{session_id}", status_code=204, responses=error_responses(404))
async def revoke_my_session(
    session_id: str, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    await run_in_threadpool(
        lambda: platform.accounts.revoke_session(user.id, session_id, actor_id=user.id, client=client)
    )
    return Response(status_code=204)


@users_router.delete("/me/sessions", status_code=204)
async def sign_out_everywhere(user: CurrentUser, platform: Services, client: ClientInfo) -> Response:
    """End all my sessions, this one included."""
    await run_in_threadpool(lambda: platform.accounts.revoke_all(user.id, actor_id=user.id, client=client))
    return Response(status_code=204)


def _key_public(record: KeyRecord) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
    )


@users_router.post("/me/api-keys", status_code=201, responses=error_responses(409, 422))
async def create_api_key(
    body: ApiKeyCreate, user: CurrentUser, platform: Services, client: ClientInfo
) -> ApiKeyCreated:
    """A personal API key for ``/v1`` (OpenAI-compatible): ``key`` is shown this once."""
    record, secret = await run_in_threadpool(platform.keys.create, user.id, body.name, client)
    return ApiKeyCreated(**_key_public(record).model_dump(), key=secret)


@users_router.get("/me/api-keys")
async def my_api_keys(
    user: CurrentUser, platform: Services, cursor: Cursor = None, limit: Limit = 50
) -> Page[ApiKeyPublic]:
    """My live API keys, newest first (their secrets are not kept)."""
    rows, next_cursor = await run_in_threadpool(platform.keys.list, user.id, cursor, limit)
    return Page(items=[_key_public(row) for row in rows], next_cursor=next_cursor)


@users_router.delete("/me/api-keys/{key_id}", status_code=204, responses=error_responses(404))
async def revoke_api_key(key_id: str, user: CurrentUser, platform: Services, client: ClientInfo) -> Response:
    await run_in_threadpool(platform.keys.revoke, user.id, key_id, client)
    return Response(status_code=204)


@users_router.get("/me/mfa")
async def my_mfa(user: CurrentUser, platform: Services) -> MfaStatusPublic:
    status = await run_in_threadpool(platform.mfa.status, user.id)
    return MfaStatusPublic(
        enabled=status.enabled, pending=status.pending, recovery_codes_left=status.recovery_codes_left
    )


@users_router.post("/me/mfa", status_code=201, responses=error_responses(409))
async def enrol_mfa(user: CurrentUser, platform: Services, client: ClientInfo) -> MfaEnrolment:
    """Start two-factor sign-in: a secret and its otpauth:// URI; confirm with a first code."""
    enrolment = await run_in_threadpool(platform.mfa.enrol, user.id, client)
    return MfaEnrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


async def _with_code_limits(platform: Platform, user: UserRecord, client: ClientInfo, work: Any) -> Any:
    """Run ``work`` (a code or password check) under the code limits; a wrong one counts."""
    rules = _mfa_rules(platform, user.id, client.address)
    await _reserve_attempt(platform, rules)
    try:
        result = await run_in_threadpool(work)
    except PlatformError as exc:  # WrongCode, or a wrong password: 403s both, already counted
        if exc.status != 403:
            await platform.throttle.release(rules)
        raise
    except BaseException:
        await platform.throttle.release(rules)
        raise
    await platform.throttle.release(rules)
    return result


@users_router.post("/me/mfa/confirm", responses=error_responses(403, 409, 422, 429))
async def confirm_mfa(
    body: MfaCode, user: CurrentUser, platform: Services, client: ClientInfo
) -> RecoveryCodes:
    """Turn two-factor sign-in on with a first code; the recovery codes are shown this once."""
    codes = await _with_code_limits(
        platform, user, client, lambda: platform.mfa.confirm(user.id, body.code, client)
    )
    return RecoveryCodes(recovery_codes=codes)


@users_router.post("/me/mfa/recovery-codes", responses=error_responses(403, 409, 422, 429))
async def replace_recovery_codes(
    body: MfaCode, user: CurrentUser, platform: Services, client: ClientInfo
) -> RecoveryCodes:
    """New recovery codes for a TOTP code; the old ones stop working."""
    codes = await _with_code_limits(
        platform, user, client, lambda: platform.mfa.regenerate(user.id, body.code, client)
    )
    return RecoveryCodes(recovery_codes=codes)


@users_router.post("/me/mfa/disable", status_code=204, responses=error_responses(403, 409, 422, 429))
async def disable_mfa(
    body: MfaDisable, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    """Turn two-factor sign-in off, with a code (or a recovery code) or the password."""
    await _with_code_limits(
        platform, user, client, lambda: platform.mfa.disable(user.id, body.code, body.password, client)
    )
    return Response(status_code=204)


# -- administration ---------------------------------------------------------------------------------


async def _target(platform: Platform, user_id: str) -> UserRecord:
    user = await run_in_threadpool(platform.accounts.get, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


@admin_users_router.get("")
async def list_users(
    admin: AdminUser,
    platform: Services,
    status: Status | None = None,
    q: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[UserPublic]:
    """Accounts, oldest first; ``status`` filters (``pending``: those waiting for approval), ``q``
    searches e-mail and name."""
    rows, next_cursor = await run_in_threadpool(platform.accounts.list_users, status, q, cursor, limit)
    return Page(items=[public(row) for row in rows], next_cursor=next_cursor)


@admin_users_router.post("", status_code=201, responses=error_responses(409, 422))
async def create_user(
    body: AdminUserCreate, admin: AdminUser, platform: Services, client: ClientInfo
) -> UserPublic:
    user = await run_in_threadpool(
        lambda: platform.accounts.create_user(
            body.email, body.password, body.name, body.role, body.status, actor_id=admin.id, client=client
        )
    )
    return public(user)


@admin_users_router.get("/{user_id}", responses=error_responses(404))
async def get_user(user_id: str, admin: AdminUser, platform: Services) -> UserPublic:
    return public(await _target(platform, user_id))


@admin_users_router.patch("/{user_id}", responses=error_responses(404, 409, 422))
async def update_user(
    user_id: str, body: AdminUserUpdate, admin: AdminUser, platform: Services, client: ClientInfo
) -> UserPublic:
    """Approve (``status: active``), disable (every session ends) or change a role; the last active
    admin keeps their role and status."""
    user = await run_in_threadpool(
        lambda: platform.accounts.update_user(
            user_id, role=body.role, status=body.status, actor_id=admin.id, client=client
        )
    )
    return public(user)


@admin_users_router.post("/{user_id}/reset-link", responses=error_responses(404))
async def issue_reset_link(
    user_id: str, admin: AdminUser, platform: Services, client: ClientInfo
) -> ResetLinkPublic:
    """A one-time password reset link to hand to the user (it expires after ``reset_ttl``)."""
    token, expires = await run_in_threadpool(
        lambda: platform.accounts.issue_reset(user_id, actor_id=admin.id, client=client)
    )
    return ResetLinkPublic(url=reset_url(platform, token), expires_at=expires)


@admin_users_router.delete("/{user_id}/mfa", status_code=204, responses=error_responses(404))
async def reset_user_mfa(user_id: str, admin: AdminUser, platform: Services, client: ClientInfo) -> Response:
    """Turn a user's two-factor sign-in off (a lost authenticator and recovery codes)."""
    await run_in_threadpool(lambda: platform.accounts.reset_mfa(user_id, actor_id=admin.id, client=client))
    return Response(status_code=204)


@admin_users_router.delete("/{user_id}/sessions", status_code=204, responses=error_responses(404))
async def sign_user_out(user_id: str, admin: AdminUser, platform: Services, client: ClientInfo) -> Response:
    await _target(platform, user_id)
    await run_in_threadpool(lambda: platform.accounts.revoke_all(user_id, actor_id=admin.id, client=client))
    return Response(status_code=204)
