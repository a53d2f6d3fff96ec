"""The browser's cookies for a session, and the token pair a sign-in or refresh answers.

Browsers keep the refresh token in an ``HttpOnly``, ``SameSite=Lax`` cookie scoped to
``/api/v1/auth`` (``Secure`` behind https) and send the access token as a bearer header like any
API client. A request that relies on the cookie must echo the ``avocado_csrf`` cookie (readable
by the page, not by other sites) in ``X-CSRF-Token``: the double-submit defence against
cross-site requests riding on the cookie.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response

from avocado.platform.accounts.errors import InvalidRefresh
from avocado.platform.accounts.records import Tokens
from avocado.platform.accounts.schemas import TokenResponse
from avocado.platform.errors import Forbidden
from avocado.platform.state import Platform

__all__ = [
    "AUTH_PATH",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "REFRESH_COOKIE",
    "clear_cookies",
    "cookie_token",
    "secure_cookies",
    "set_cookies",
    "token_response",
]

REFRESH_COOKIE = "avocado_refresh"
CSRF_COOKIE = "avocado_csrf"
CSRF_HEADER = "X-CSRF-Token"
AUTH_PATH = "/api/v1/auth"


def secure_cookies(platform: Platform, request: Request) -> bool:
    """Whether cookies are ``Secure``: the public URL's scheme when set, else the request's (after
    trusted proxies)."""
    if platform.settings.public_url is not None:
        return platform.settings.public_url.startswith("https://")
    return platform.proxies.scheme(request) == "https"


def set_cookies(platform: Platform, request: Request, response: Response, refresh_token: str) -> None:
    secure, max_age = secure_cookies(platform, request), int(platform.settings.refresh_ttl_seconds)
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


def clear_cookies(platform: Platform, request: Request, response: Response) -> None:
    secure = secure_cookies(platform, request)
    response.delete_cookie(REFRESH_COOKIE, path=AUTH_PATH, httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)


def cookie_token(request: Request) -> str:
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


def token_response(
    platform: Platform, request: Request, response: Response, tokens: Tokens, cookie: bool
) -> TokenResponse:
    if cookie:
        set_cookies(platform, request, response, tokens.refresh_token)
        return TokenResponse(access_token=tokens.access_token, expires_in=tokens.expires_in)
    return TokenResponse(
        access_token=tokens.access_token, expires_in=tokens.expires_in, refresh_token=tokens.refresh_token
    )
