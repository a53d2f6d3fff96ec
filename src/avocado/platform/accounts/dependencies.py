"""Who is calling: the bearer token's session, its user, and whether they are an admin.

An anonymous caller gets ``401``; a valid token of a session revoked since (signed out, password
changed, account disabled, refresh token reused) gets ``401`` too, checked against the in-memory
revocation set, with no query. The user's row is read for routes that need it (their status and
role now, not when the token was issued), so a demoted admin loses admin routes at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.service import AccountService, Client, UserRecord
from avocado.platform.accounts.tokens import InvalidToken
from avocado.platform.errors import Forbidden, Unauthorized
from avocado.platform.state import platform_of

__all__ = [
    "Principal",
    "active_user",
    "allowed",
    "bearer",
    "client_of",
    "current_admin",
    "current_principal",
    "current_user",
]

bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/login")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    session_id: str
    role: str


def client_of(request: Request) -> Client:
    platform = platform_of(request)
    return Client(platform.proxies.client_address(request), request.headers.get("user-agent", "")[:300])


def principal_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None:
        raise Unauthorized("sign in first: Authorization: Bearer <access token>")
    platform = platform_of(request)
    try:
        claims = platform.accounts.signer.verify(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None
    if platform.revocations.is_revoked(claims.session_id):
        raise Unauthorized("this session has ended: sign in again")
    return Principal(claims.user_id, claims.session_id, claims.role)


async def current_principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    return principal_from(request, credentials)


def active_user(accounts: AccountService, user_id: str) -> UserRecord:
    """The user's row now; ``401`` unless the account may sign in."""
    return allowed(accounts.get(user_id))


def allowed(user: UserRecord | None) -> UserRecord:
    """``user``, read now; ``401`` unless the account may sign in (a route that reads the user's row
    with more calls this on it, instead of :func:`current_user`)."""
    if user is None or user.status != "active":
        raise Unauthorized("this account may not sign in now")
    return user


async def current_user(request: Request, principal: Principal) -> UserRecord:
    return await run_in_threadpool(active_user, platform_of(request).accounts, principal.user_id)


async def current_admin(user: UserRecord) -> UserRecord:
    if user.role != "admin":
        raise Forbidden("administrators only")
    return user
