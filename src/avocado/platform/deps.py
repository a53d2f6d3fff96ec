"""Every dependency routes declare, as ``Annotated`` types: ``user: CurrentUser``, ``admin: AdminUser``.

Domains import from here, so a route's signature says what it needs and the checks live in one
place (:mod:`avocado.platform.accounts.dependencies`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from avocado.platform.accounts import dependencies as auth
from avocado.platform.accounts.service import Client, UserRecord
from avocado.platform.limits.schemas import LimitValues
from avocado.platform.state import Platform, platform_of

__all__ = ["AdminUser", "ClientInfo", "CurrentUser", "PrincipalDep", "Services", "user_with_limits"]

# Every dependency here is ``async def``: FastAPI runs a plain ``def`` in its thread pool, a
# hand-off per request (a few hundred microseconds before the route starts)


async def _platform(request: Request) -> Platform:
    return platform_of(request)


async def _client(request: Request) -> Client:
    return auth.client_of(request)


Services = Annotated[Platform, Depends(_platform)]
ClientInfo = Annotated[Client, Depends(_client)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(auth.bearer)]


async def _principal(request: Request, credentials: Credentials) -> auth.Principal:
    return await auth.current_principal(request, credentials)


PrincipalDep = Annotated[auth.Principal, Depends(_principal)]


async def _user(request: Request, principal: PrincipalDep) -> UserRecord:
    return await auth.current_user(request, principal)


def user_with_limits(
    platform: Platform, principal: auth.Principal, session: Session
) -> tuple[UserRecord, LimitValues]:
    """:data:`CurrentUser`'s check, with the user's limits, in one statement of ``session``: for a
    route that reads them with more in its own worker thread."""
    user, effective = platform.limits.account_now(session, principal.user_id) or (None, LimitValues())
    return auth.allowed(user), effective


CurrentUser = Annotated[UserRecord, Depends(_user)]


async def _admin(user: CurrentUser) -> UserRecord:
    return await auth.current_admin(user)


AdminUser = Annotated[UserRecord, Depends(_admin)]
