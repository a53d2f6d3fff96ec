"""``/api/v1/auth/password-reset*``: asking for a reset link by mail, and setting a new password with
one; the links themselves (mailed by a job, or handed out by an administrator)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.attempts import reserve_attempt
from avocado.platform.accounts.records import Client
from avocado.platform.accounts.schemas import PasswordResetConfirm, PasswordResetRequest
from avocado.platform.accounts.throttle import Rule
from avocado.platform.deps import ClientInfo, Services
from avocado.platform.errors import error_responses
from avocado.platform.state import Platform

__all__ = ["password_reset_router", "reset_link", "reset_url"]

password_reset_router = APIRouter()


@password_reset_router.post("/password-reset/request", status_code=202, responses=error_responses(422, 429))
async def request_reset(body: PasswordResetRequest, platform: Services, client: ClientInfo) -> dict[str, str]:
    """Mail a reset link if the address has an account and mail is set up; the answer is the same
    either way (no account enumeration)."""
    rules = [Rule(f"reset:{client.address}", platform.settings.login_free_attempts)]
    await reserve_attempt(platform, rules)  # every request counts: a mailbox is not to be flooded
    await platform.jobs.send_reset(body.email, client.address, client.user_agent)
    return {"detail": "if this address has an account, a reset link is on its way"}


@password_reset_router.post("/password-reset", status_code=204, responses=error_responses(400, 422))
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
