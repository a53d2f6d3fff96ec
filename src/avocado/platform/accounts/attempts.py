"""How the accounts routes count attempts that guess (a password, a two-factor code) against the
sign-in limits (:mod:`~avocado.platform.accounts.throttle`): per account and per address."""

from __future__ import annotations

import math

from avocado.platform.accounts.throttle import Rule
from avocado.platform.errors import TooManyRequests
from avocado.platform.state import Platform

__all__ = ["mfa_rules", "reserve_attempt", "sign_in_rules"]


def sign_in_rules(platform: Platform, email: str, address: str) -> list[Rule]:
    settings = platform.settings
    return [
        Rule(f"account:{email}", settings.login_free_attempts),
        Rule(f"address:{address}", settings.address_free_attempts),
    ]


async def reserve_attempt(platform: Platform, rules: list[Rule]) -> None:
    """Count the attempt as failed before checking it (released if it is not): parallel attempts
    then see each other, where check-then-count let a burst through one check."""
    wait = await platform.throttle.reserve(rules)
    if wait > 0:
        seconds = math.ceil(wait)
        raise TooManyRequests(f"too many failed attempts: try again in {seconds} s", seconds)


def mfa_rules(platform: Platform, user_id: str, address: str) -> list[Rule]:
    """Code attempts are limited like sign-ins: per account and per address."""
    settings = platform.settings
    return [
        Rule(f"mfa:{user_id}", settings.login_free_attempts),
        Rule(f"address:{address}", settings.address_free_attempts),
    ]
