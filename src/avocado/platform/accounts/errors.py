"""The accounts domain's refusals, each with the status and the words a person reads."""

from __future__ import annotations

from avocado.platform.errors import Conflict, Forbidden, PlatformError, Unauthorized

__all__ = [
    "AccountDisabled",
    "AccountPending",
    "EmailTaken",
    "InvalidCredentials",
    "InvalidRefresh",
    "InvalidReset",
    "LastAdmin",
    "SignupClosed",
    "WeakPassword",
    "WrongPassword",
]


class InvalidCredentials(Unauthorized):
    def __init__(self) -> None:
        super().__init__("wrong e-mail or password")  # the same words whichever of the two was wrong


class AccountPending(Forbidden):
    def __init__(self) -> None:
        super().__init__("this account is waiting for an administrator's approval")


class AccountDisabled(Forbidden):
    def __init__(self) -> None:
        super().__init__("this account is disabled: ask an administrator")


class SignupClosed(Forbidden):
    def __init__(self) -> None:
        super().__init__("sign-up is closed: ask an administrator for an account")


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("an account with this e-mail address exists: sign in, or reset its password")


class LastAdmin(Conflict):
    def __init__(self) -> None:
        super().__init__("this is the last active administrator: make another one first")


class InvalidRefresh(Unauthorized):
    pass


class InvalidReset(PlatformError):
    def __init__(self) -> None:
        super().__init__("this reset link is invalid, already used or expired: ask for a new one")


class WrongPassword(PlatformError):
    def __init__(self, field: str = "current_password") -> None:
        super().__init__(f"{field}: wrong password", status=403)


class WeakPassword(PlatformError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", status=422)
