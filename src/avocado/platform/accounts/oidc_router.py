"""``/api/v1/auth/oidc*``: sign-in with the configured OpenID Connect provider.

``GET /auth/oidc`` says whether single sign-on is configured and what to call it (the sign-in page
shows "Sign in with NAME"). ``GET /auth/oidc/login`` sends the browser to the provider; the state,
nonce and PKCE verifier travel in a signed, ``HttpOnly``, ten-minute cookie scoped to these routes,
so any replica can finish the sign-in and nothing is stored per attempt. The provider sends the
browser back to ``GET /auth/oidc/callback`` at ``public_url`` (never built from the ``Host``
header); it checks the state against the cookie, exchanges the code, validates the ID token, finds
or makes the account (:class:`~avocado.platform.accounts.oidc.Identities`) and starts a session as
``POST /auth/login`` with ``cookie: true`` does (the refresh cookie), then sends the browser to the
web UI. With two-factor sign-in on, the web UI's code step comes first (``/signin#mfa=TOKEN``).

A failed callback answers its error as ``{"detail": ...}`` with its status to API clients; a
browser (``Accept: text/html``) is sent to the sign-in page with a reason from a fixed list
(``/signin?sso_error=state``, which the page words itself), or to ``/pending`` when the account waits
for approval.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.cookies import AUTH_PATH, secure_cookies, set_cookies
from avocado.platform.accounts.errors import AccountDisabled, AccountPending, SignupClosed
from avocado.platform.accounts.oidc import OidcFailed
from avocado.platform.accounts.tokens import InvalidToken
from avocado.platform.deps import ClientInfo, Services
from avocado.platform.errors import NotFound, PlatformError, error_responses
from avocado.platform.state import Platform

__all__ = ["OIDC_COOKIE", "OidcInfo", "oidc_router"]

OIDC_PATH = f"{AUTH_PATH}/oidc"
OIDC_COOKIE = "avocado_oidc"
STATE_TYPE = "oidc-state"
STATE_TTL = 600  # seconds from the redirect to the provider to the callback

oidc_router = APIRouter(prefix=OIDC_PATH, tags=["auth"])


class OidcInfo(BaseModel):
    enabled: bool
    name: str | None = None
    login_url: str | None = None


def _provider(platform: Platform) -> tuple[str, str]:
    if platform.oidc is None:
        raise NotFound("single sign-on is not configured here")
    return platform.oidc.name, callback_url(platform)


def callback_url(platform: Platform) -> str:
    """Where the provider sends the browser back: from ``public_url``, never from the request."""
    return f"{platform.settings.base_url}{OIDC_PATH}/callback"


def _safe_next(value: str | None) -> str:
    """A path on this site to land on after signing in; anything else is the home page."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 500:
        return "/"
    return value


@oidc_router.get("")
async def oidc_info(platform: Services) -> OidcInfo:
    """Whether single sign-on is configured, and the name of the provider for the button."""
    if platform.oidc is None:
        return OidcInfo(enabled=False)
    return OidcInfo(enabled=True, name=platform.oidc.name, login_url=f"{OIDC_PATH}/login")


@oidc_router.get(
    "/login",
    status_code=302,
    responses={**error_responses(404), 502: {"description": "The provider cannot be reached"}},
)
async def oidc_login(
    request: Request,
    platform: Services,
    next: Annotated[str | None, Query(max_length=500, description="A path to land on")] = None,
) -> Response:
    """Send the browser to the provider, with a state, a nonce and a PKCE challenge."""
    try:
        _, redirect_uri = _provider(platform)
        assert platform.oidc is not None
        made = await platform.oidc.authorization(redirect_uri)
    except PlatformError as exc:
        return _failed(platform, request, exc)
    cookie = platform.accounts.signer.issue_state(
        STATE_TYPE,
        {"state": made.state, "nonce": made.nonce, "verifier": made.code_verifier, "next": _safe_next(next)},
        STATE_TTL,
    )
    response = RedirectResponse(made.url, status_code=302)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        OIDC_COOKIE,
        cookie,
        max_age=STATE_TTL,
        path=OIDC_PATH,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET: Lax cookies go with it
        secure=secure_cookies(platform, request),
    )
    return response


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


ERROR_CODES: tuple[tuple[type[PlatformError], str], ...] = (
    (AccountDisabled, "disabled"),
    (SignupClosed, "closed"),
    (NotFound, "not_configured"),
)


def error_code(error: PlatformError) -> str:
    """The reason a browser is sent back to the sign-in page with: a word from a fixed list, which
    the page turns into its own sentence (a message in the URL could be anyone's words)."""
    code = getattr(error, "code", None)
    if isinstance(code, str):
        return code
    return next((name for kind, name in ERROR_CODES if isinstance(error, kind)), "failed")


def _failed(platform: Platform, request: Request, error: PlatformError) -> Response:
    """The error for an API client; for a browser, the sign-in page (or ``/pending``) saying why."""
    response: Response
    if _wants_html(request):
        base = platform.settings.base_url
        pending = isinstance(error, AccountPending)
        target = f"{base}/pending" if pending else f"{base}/signin?sso_error={error_code(error)}"
        response = RedirectResponse(target, status_code=303)
    else:
        response = JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)
    response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH, httponly=True, samesite="lax")
    return response


def _check_state(platform: Platform, request: Request, state: str | None) -> dict[str, str]:
    name = platform.oidc.name if platform.oidc else "the provider"
    token = request.cookies.get(OIDC_COOKIE)
    if not token:
        raise OidcFailed(
            f"this sign-in with {name} was not started in this browser, or took over "
            f"{STATE_TTL // 60} minutes: start again",
            code="state",
        )
    try:
        claims = platform.accounts.signer.verify_state(STATE_TYPE, token)
    except InvalidToken:
        raise OidcFailed(f"this sign-in with {name} expired: start again", code="state") from None
    expected = str(claims.get("state", ""))
    if not state or not expected or not hmac.compare_digest(expected.encode(), state.encode()):
        raise OidcFailed(
            f"state: does not match this browser's sign-in with {name}: start again", code="state"
        )
    return {key: str(claims.get(key, "")) for key in ("nonce", "verifier", "next")}


def _audit_failure(platform: Platform, client: ClientInfo, reason: str) -> None:
    issuer = platform.oidc.issuer if platform.oidc else None
    platform.audit.record_now(
        "signin.failed",
        address=client.address,
        detail={"via": "oidc", "issuer": issuer, "reason": reason[:200]},
    )


@oidc_router.get(
    "/callback",
    status_code=303,
    responses={**error_responses(400, 403, 404, 409), 502: {"description": "The provider cannot be reached"}},
)
async def oidc_callback(
    request: Request,
    platform: Services,
    client: ClientInfo,
    state: Annotated[str | None, Query(max_length=500)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Finish a sign-in: check the state, exchange the code, validate the ID token, find or make
    the account, start a session (refresh cookie) and go to the web UI."""
    name, redirect_uri = _provider(platform)
    assert platform.oidc is not None
    try:
        started = _check_state(platform, request, state)
        if error is not None:
            raise OidcFailed(f"{name} did not sign you in ({error}): try again", code="denied")
        if not code:
            raise OidcFailed(f"code: {name} sent no authorization code")
        claims = await platform.oidc.claims(redirect_uri, code, started["verifier"], started["nonce"])
        user = await run_in_threadpool(platform.identities.sign_in, claims, name, client)
    except PlatformError as exc:
        if not isinstance(exc, NotFound) and exc.status != 403:  # 403s were audited where decided
            await run_in_threadpool(_audit_failure, platform, client, exc.detail)
        return _failed(platform, request, exc)
    base = platform.settings.base_url
    response: Response
    if await run_in_threadpool(platform.mfa.enabled, user.id):
        token = platform.accounts.signer.issue_mfa(user.id, cookie=True)
        target = _safe_next(started["next"])  # where the sign-in page goes once the code is right
        query = f"?next={quote(target, safe='')}" if target != "/" else ""
        response = RedirectResponse(f"{base}/signin{query}#mfa={token}", status_code=303)
    else:
        tokens = await run_in_threadpool(lambda: platform.accounts.start_session(user, client, via="oidc"))
        response = RedirectResponse(f"{base}{_safe_next(started['next'])}", status_code=303)
        set_cookies(platform, request, response, tokens.refresh_token)
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH, httponly=True, samesite="lax")
    return response
