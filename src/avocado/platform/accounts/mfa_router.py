"""``/api/v1/users/me/mfa*``: my two-factor sign-in (:mod:`~avocado.platform.accounts.mfa`): turning
it on with a first code, new recovery codes, turning it off. Codes count against the sign-in limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.attempts import mfa_rules, reserve_attempt
from avocado.platform.accounts.records import UserRecord
from avocado.platform.accounts.schemas import (
    MfaCode,
    MfaDisable,
    MfaEnrolment,
    MfaStatusPublic,
    RecoveryCodes,
)
from avocado.platform.deps import ClientInfo, CurrentUser, Services
from avocado.platform.errors import PlatformError, error_responses
from avocado.platform.state import Platform

__all__ = ["mfa_router"]

mfa_router = APIRouter()


@mfa_router.get("/me/mfa")
async def my_mfa(user: CurrentUser, platform: Services) -> MfaStatusPublic:
    status = await run_in_threadpool(platform.mfa.status, user.id)
    return MfaStatusPublic(
        enabled=status.enabled, pending=status.pending, recovery_codes_left=status.recovery_codes_left
    )


@mfa_router.post("/me/mfa", status_code=201, responses=error_responses(409))
async def enrol_mfa(user: CurrentUser, platform: Services, client: ClientInfo) -> MfaEnrolment:
    """Start two-factor sign-in: a secret and its otpauth:// URI; confirm with a first code."""
    enrolment = await run_in_threadpool(platform.mfa.enrol, user.id, client)
    return MfaEnrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


async def _with_code_limits(platform: Platform, user: UserRecord, client: ClientInfo, work: Any) -> Any:
    """Run ``work`` (a code or password check) under the code limits; a wrong one counts."""
    rules = mfa_rules(platform, user.id, client.address)
    await reserve_attempt(platform, rules)
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


@mfa_router.post("/me/mfa/confirm", responses=error_responses(403, 409, 422, 429))
async def confirm_mfa(
    body: MfaCode, user: CurrentUser, platform: Services, client: ClientInfo
) -> RecoveryCodes:
    """Turn two-factor sign-in on with a first code; the recovery codes are shown this once."""
    codes = await _with_code_limits(
        platform, user, client, lambda: platform.mfa.confirm(user.id, body.code, client)
    )
    return RecoveryCodes(recovery_codes=codes)


@mfa_router.post("/me/mfa/recovery-codes", responses=error_responses(403, 409, 422, 429))
async def replace_recovery_codes(
    body: MfaCode, user: CurrentUser, platform: Services, client: ClientInfo
) -> RecoveryCodes:
    """New recovery codes for a TOTP code; the old ones stop working."""
    codes = await _with_code_limits(
        platform, user, client, lambda: platform.mfa.regenerate(user.id, body.code, client)
    )
    return RecoveryCodes(recovery_codes=codes)


@mfa_router.post("/me/mfa/disable", status_code=204, responses=error_responses(403, 409, 422, 429))
async def disable_mfa(
    body: MfaDisable, user: CurrentUser, platform: Services, client: ClientInfo
) -> Response:
    """Turn two-factor sign-in off, with a code (or a recovery code) or the password."""
    await _with_code_limits(
        platform, user, client, lambda: platform.mfa.disable(user.id, body.code, body.password, client)
    )
    return Response(status_code=204)
