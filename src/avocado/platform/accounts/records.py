"""What the accounts' services hand out: who is asking (:class:`Client`), an account, a session and a
token pair as plain records (no ORM rows leave a transaction), and the small readings of them the API
shares: an account as the API shows it, a session's device in words, a list cursor's time stamp."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from avocado.platform.accounts.models import AuthSession, User
from avocado.platform.accounts.schemas import UserPublic

__all__ = [
    "CLI",
    "Client",
    "SessionRecord",
    "Tokens",
    "UserRecord",
    "describe_device",
    "session_record",
    "user_public",
    "user_record",
]


@dataclass(frozen=True, slots=True)
class Client:
    """Who is asking, as far as the platform can tell (the address after trusted proxies)."""

    address: str
    user_agent: str = ""


CLI = Client(address="cli", user_agent="avocado users")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    name: str
    role: str
    status: str
    created_at: datetime
    last_login_at: datetime | None
    has_password: bool = True  # False: made by single sign-on, no password set yet


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_agent: str
    address: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    user: UserRecord


def user_record(row: User | Row[Any]) -> UserRecord:
    """The record of a user's row, loaded as an object or read as the same columns."""
    return UserRecord(
        row.id,
        row.email,
        row.name,
        row.role,
        row.status,
        row.created_at,
        row.last_login_at,
        row.password_hash is not None,
    )


def user_public(user: UserRecord) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,  # type: ignore[arg-type]
        status=user.status,  # type: ignore[arg-type]
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        has_password=user.has_password,
    )


def session_record(row: AuthSession) -> SessionRecord:
    return SessionRecord(
        row.id, row.user_agent, row.address, row.created_at, row.last_used_at, row.expires_at
    )


def describe_device(user_agent: str) -> str:
    """``Firefox on Linux``, ``curl``, ...: enough to tell one's sessions apart."""
    agent = user_agent.lower()
    browser = next(
        (
            name
            for key, name in (
                ("edg/", "Edge"), ("opr/", "Opera"), ("firefox/", "Firefox"), ("chrome/", "Chrome"),
                ("safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"), ("python", "Python"),
                ("avocado", "avocado CLI"),
            )
            if key in agent
        ),
        None,
    )  # fmt: skip
    system = next(
        (
            name
            for key, name in (
                ("android", "Android"), ("iphone", "iOS"), ("ipad", "iPadOS"), ("windows", "Windows"),
                ("mac os", "macOS"), ("linux", "Linux"),
            )
            if key in agent
        ),
        None,
    )  # fmt: skip
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:40] if user_agent else "unknown device")
