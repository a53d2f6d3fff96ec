"""``/api/v1/auth/*``: the sign-up policy, sign-up, sign-in (with a second step when two-factor
sign-in is on), refreshing the tokens and signing out. Browsers get the refresh token as a cookie
(:mod:`~avocado.platform.accounts.cookies`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.attempts import mfa_rules, reserve_attempt, sign_in_rules
from avocado.platform.accounts.cookies import (
    CSRF_COOKIE,
    REFRESH_COOKIE,
    clear_cookies,
    cookie_token,
    token_response,
)
from avocado.platform.accounts.dependencies import bearer, principal_from
from avocado.platform.accounts.errors import InvalidCredentials, InvalidRefresh
from avocado.platform.accounts.records import user_public
from avocado.platform.accounts.schemas import (
    AuthConfig,
    LoginRequest,
    LogoutRequest,
    MfaChallenge,
    MfaLogin,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserPublic,
)
from avocado.platform.accounts.tokens import MFA_TTL, InvalidToken
from avocado.platform.deps import ClientInfo, Services
from avocado.platform.errors import Unauthorized, error_responses

__all__ = ["signin_router"]

signin_router = APIRouter()


@signin_router.get("/config")
async def auth_config(platform: Services) -> AuthConfig:
    """Public: the sign-up policy, and which optional features this platform offers (``management``:
    the gateway's nodes and usage, which need our gateway and its master key)."""
    values = await run_in_threadpool(platform.site.all)
    return AuthConfig(signup_policy=values["signup_policy"], management=await platform.management.available())


@signin_router.post("/register", status_code=201, responses=error_responses(403, 409, 422))
async def register(body: RegisterRequest, platform: Services, client: ClientInfo) -> UserPublic:
    """A new account: the first one is an active admin; then the sign-up policy decides."""
    user = await run_in_threadpool(platform.accounts.register, body.email, body.password, body.name, client)
    return user_public(user)


@signin_router.post(
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
    rules = sign_in_rules(platform, body.email, client.address)
    await reserve_attempt(platform, rules)
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
    return token_response(platform, request, response, tokens, body.cookie)


@signin_router.post("/mfa", response_model_exclude_none=True, responses=error_responses(401, 403, 422, 429))
async def mfa_login(
    body: MfaLogin, request: Request, response: Response, platform: Services, client: ClientInfo
) -> TokenResponse:
    """The second step of a sign-in: login's ``mfa_token`` and a TOTP code (or a recovery code)."""
    try:
        user_id, cookie = platform.accounts.signer.verify_mfa(body.mfa_token)
    except InvalidToken as exc:
        raise Unauthorized(f"{exc}: sign in again") from None
    rules = mfa_rules(platform, user_id, client.address)
    await reserve_attempt(platform, rules)
    if not await run_in_threadpool(platform.mfa.verify, user_id, body.code, client):
        raise Unauthorized("code: wrong or already used code")  # already counted
    await platform.throttle.release(rules)
    await platform.throttle.succeeded(rules[0])
    user = await run_in_threadpool(platform.accounts.get, user_id)
    if user is None or user.status != "active":
        raise Unauthorized("this account may not sign in now")
    tokens = await run_in_threadpool(platform.accounts.start_session, user, client)
    return token_response(platform, request, response, tokens, cookie or body.cookie)


@signin_router.post(
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
    token = cookie_token(request) if from_cookie else body.refresh_token  # type: ignore[union-attr]
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
        clear_cookies(platform, request, answer)
        return answer
    return token_response(platform, request, response, tokens, from_cookie)


@signin_router.post("/logout", status_code=204, responses=error_responses(403, 422))
async def logout(
    request: Request, platform: Services, client: ClientInfo, body: LogoutRequest | None = None
) -> Response:
    """End a session: the one of the refresh token given, of the cookie, or of the bearer token."""
    response = Response(status_code=204)
    token = body.refresh_token if body is not None else None
    if token is None and request.cookies.get(REFRESH_COOKIE):
        token = cookie_token(request)
    if request.cookies.get(REFRESH_COOKIE) or request.cookies.get(CSRF_COOKIE):
        clear_cookies(platform, request, response)  # whichever way the session ended
    if token is not None:
        owner = await run_in_threadpool(platform.accounts.session_of_refresh, token)
        if owner is not None:
            await run_in_threadpool(platform.accounts.sign_out, owner[1], owner[0], client)
        return response
    principal = principal_from(request, await bearer(request))
    await run_in_threadpool(platform.accounts.sign_out, principal.user_id, principal.session_id, client)
    return response
