"""The accounts API: ``/api/v1/auth/*`` (sign-up, sign-in, tokens), ``/api/v1/users/me*`` (my account,
my sessions) and ``/api/v1/admin/users*`` (administrators), put together from one router per feature:
:mod:`signin_router` and :mod:`password_reset_router` under ``/auth``; :mod:`profile_router`,
:mod:`sessions_router`, :mod:`api_keys_router` and :mod:`mfa_router` under ``/users``;
:mod:`admin_users_router`. How browsers hold a session (cookies, CSRF) is in :mod:`cookies`.
"""

from __future__ import annotations

from fastapi import APIRouter

from avocado.platform.accounts.admin_users_router import admin_users_router
from avocado.platform.accounts.api_keys_router import api_keys_router
from avocado.platform.accounts.cookies import AUTH_PATH, CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE
from avocado.platform.accounts.mfa_router import mfa_router
from avocado.platform.accounts.password_reset_router import password_reset_router
from avocado.platform.accounts.profile_router import profile_router
from avocado.platform.accounts.sessions_router import sessions_router
from avocado.platform.accounts.signin_router import signin_router
from avocado.platform.errors import error_responses

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "REFRESH_COOKIE",
    "admin_users_router",
    "auth_router",
    "users_router",
]

# Included in the order the routes are matched and documented in.
auth_router = APIRouter(prefix=AUTH_PATH, tags=["auth"])
for part in (signin_router, password_reset_router):
    auth_router.include_router(part)
users_router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=error_responses(401))
for part in (profile_router, sessions_router, api_keys_router, mfa_router):
    users_router.include_router(part)
