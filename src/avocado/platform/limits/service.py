"""One limits model for the whole platform: defaults per role, overrides per user.

The limits of each role are the ``role_limits`` setting (in the settings store, every change
audited); a user's override (``user_limits``) sets some fields for them alone. What applies to a
user is each field of their override where it is set, else their role's. Later domains reuse this
service instead of limits of their own:

.. code-block:: python

    async with platform.limits.admit(user, model):   # 404 hidden model, 429 over a limit
        ...generate...
        await platform.limits.record_tokens(user, usage.total_tokens)

An :class:`Admission` can also be entered and left by hand (``acquire`` / ``release``) when the
work outlives the route's function, as a streamed answer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from avocado.platform.accounts.models import User
from avocado.platform.accounts.records import UserRecord, user_record
from avocado.platform.admin.models import SiteSetting
from avocado.platform.admin.service import DEFAULTS, Audit, SiteSettings
from avocado.platform.errors import NotFound
from avocado.platform.limits.counters import DAY, Counters, Quota, Usage
from avocado.platform.limits.errors import LimitExceeded, ModelHidden
from avocado.platform.limits.models import UserLimit
from avocado.platform.limits.schemas import LimitValues, RoleDefaults

__all__ = ["SETTING", "Account", "Admission", "Limits", "UserLimits", "model_visible"]

SETTING = "role_limits"  # the settings store's key for the role defaults

T = TypeVar("T")

# An account, its own limits and the roles' defaults in one statement: a send reads all three before
# its answer starts, and each statement costs a few hundred microseconds there
_ACCOUNT = (
    select(
        User.id,
        User.email,
        User.name,
        User.role,
        User.status,
        User.created_at,
        User.last_login_at,
        User.password_hash,
        UserLimit.limits.label("own"),
        select(SiteSetting.value).where(SiteSetting.key == SETTING).scalar_subquery().label("defaults"),
    )
    .outerjoin(UserLimit, UserLimit.user_id == User.id)
    .where(User.id == bindparam("id"))
)


class Account(Protocol):
    """Whoever the limits apply to: a user's id and role (``UserRecord`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True, slots=True)
class UserLimits:
    """An override and what it makes of the role's limits."""

    user_id: str
    role: str
    override: dict[str, Any]
    defaults: LimitValues
    effective: LimitValues
    updated_at: datetime | None


def model_visible(name: str, patterns: Iterable[str] | None) -> bool:
    """Whether ``name`` matches one of ``patterns`` (``None``: every model). A name without a tag
    is also tried with ``:latest``, as Ollama-compatible servers name it."""
    if patterns is None:
        return True
    names = (name,) if ":" in name else (name, f"{name}:latest")
    return any(fnmatchcase(candidate, pattern) for pattern in patterns for candidate in names)


def _merged(defaults: LimitValues, override: Mapping[str, Any]) -> LimitValues:
    return LimitValues.model_validate({**defaults.model_dump(), **override})


class Admission:
    """One request under a user's limits: ``acquire`` checks the model and the limits and counts
    it, ``release`` ends it (idempotent). While held with Redis, its slot is renewed."""

    def __init__(self, limits: Limits, account: Account, model: str | None, effective: LimitValues | None):
        self._limits = limits
        self.account = account
        self.model = model
        self.effective = effective
        self.lease = uuid.uuid4().hex
        self._held = False
        self._renewing: asyncio.Task[None] | None = None

    async def acquire(self) -> Admission:
        if self.effective is None:
            self.effective = await self._limits.effective(self.account)
        if self.model is not None and not model_visible(self.model, self.effective.models):
            raise ModelHidden(self.model)
        quota = Quota(
            self.effective.requests_per_minute,
            self.effective.concurrent_requests,
            self.effective.tokens_per_day,
        )
        refusal = await self._limits.counters.admit(self.account.id, quota, self.lease)
        if refusal is not None:
            raise LimitExceeded(refusal.reason, refusal.limit, refusal.retry_after)
        self._held = True
        ttl = self._limits.counters.lease_ttl
        if ttl != float("inf"):
            self._renewing = asyncio.create_task(self._renew_every(ttl / 3), name="limits-lease")
        return self

    async def _renew_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease outlives two
                await self._limits.counters.renew(self.account.id, self.lease)

    async def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._renewing is not None:
            self._renewing.cancel()
            self._renewing = None
        await self._limits.counters.release(self.account.id, self.lease)

    async def record_tokens(self, tokens: int) -> None:
        await self._limits.record_tokens(self.account, tokens)

    async def __aenter__(self) -> Admission:
        return await self.acquire()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class Limits:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: SiteSettings,
        audit: Audit,
        counters: Counters,
    ) -> None:
        self._sessions = sessions
        self._site = site
        self._audit = audit
        self.counters = counters
        self._last: tuple[Any, RoleDefaults] | None = None  # the role defaults last parsed

    # -- what applies ------------------------------------------------------------------------------

    def role_defaults(self) -> RoleDefaults:
        with self._sessions() as session:
            return self._defaults(session)

    def _defaults(self, session: Session) -> RoleDefaults:
        return self._parsed(self._site.get(session, SETTING))

    def _parsed(self, stored: Any) -> RoleDefaults:
        """The role defaults of the stored setting (``None``: none stored), parsed once while it
        stays the same."""
        raw = DEFAULTS[SETTING] if stored is None else stored
        last = self._last
        if last is not None and last[0] == raw:
            return last[1]
        parsed = RoleDefaults.model_validate(raw)
        self._last = (raw, parsed)
        return parsed

    def set_role_defaults(
        self, changes: Mapping[str, LimitValues], *, actor_id: str | None, address: str | None
    ) -> RoleDefaults:
        """Replace the limits of the roles in ``changes`` (audited as a settings change)."""
        current = self.role_defaults().model_dump()
        for role, values in changes.items():
            current[role] = values.model_dump()
        self._site.update({SETTING: current}, actor_id=actor_id, address=address)
        return self.role_defaults()

    def effective_now(self, account: Account) -> LimitValues:
        with self._sessions() as session:
            defaults = getattr(self._defaults(session), account.role, LimitValues())
            row = session.get(UserLimit, account.id)
            return _merged(defaults, row.limits if row is not None else {})

    def account_now(self, session: Session, user_id: str) -> tuple[UserRecord, LimitValues] | None:
        """The account and the limits that apply to it now, read in one statement of the caller's
        ``session``; ``None`` when there is no such account."""
        row = session.execute(_ACCOUNT, {"id": user_id}).first()
        if row is None:
            return None
        user = user_record(row)
        defaults = getattr(self._parsed(row.defaults), user.role, LimitValues())
        return user, _merged(defaults, row.own or {})

    async def effective(self, account: Account) -> LimitValues:
        return await run_in_threadpool(self.effective_now, account)

    async def visible(
        self,
        account: Account,
        items: list[T],
        name: Callable[[T], str],
        *,
        effective: LimitValues | None = None,
    ) -> list[T]:
        """The ``items`` (models) whose ``name`` this account may see (``effective``: its limits,
        when already read)."""
        patterns = (effective or await self.effective(account)).models
        return [item for item in items if model_visible(name(item), patterns)]

    # -- admission and use -------------------------------------------------------------------------

    def admit(
        self, account: Account, model: str | None = None, *, effective: LimitValues | None = None
    ) -> Admission:
        """A request of ``account`` (to ``model``, when one is named) under its limits; use it as
        ``async with``. ``effective``: the limits already read for this request."""
        return Admission(self, account, model, effective)

    async def record_tokens(self, account: Account, tokens: int) -> None:
        """Count ``tokens`` (prompt and completion) into the account's tokens of today."""
        if tokens > 0:
            await self.counters.add_tokens(account.id, tokens)

    async def usage(self, account: Account) -> tuple[Usage, datetime]:
        """What the account uses now, and when its tokens of today start again."""
        used = await self.counters.usage(account.id)
        midnight = (int(time.time()) // DAY + 1) * DAY
        return used, datetime.fromtimestamp(midnight, UTC)

    # -- overrides ---------------------------------------------------------------------------------

    def _user(self, session: Session, user_id: str) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    def _described(self, session: Session, user: User, row: UserLimit | None) -> UserLimits:
        defaults = getattr(self._defaults(session), user.role, LimitValues())
        override = dict(row.limits) if row is not None else {}
        return UserLimits(
            user.id,
            user.role,
            override,
            defaults,
            _merged(defaults, override),
            row.updated_at if row else None,
        )

    def of_user(self, user_id: str) -> UserLimits:
        with self._sessions() as session:
            user = self._user(session, user_id)
            return self._described(session, user, session.get(UserLimit, user_id))

    def set_override(
        self, user_id: str, values: Mapping[str, Any], *, actor_id: str | None, address: str | None
    ) -> UserLimits:
        """Make ``values`` (the fields given, ``None`` meaning no limit) the user's override."""
        now = self._audit.now()
        with self._sessions.begin() as session:
            user = self._user(session, user_id)
            row = session.get(UserLimit, user_id)
            old = dict(row.limits) if row is not None else None
            if row is None:
                row = UserLimit(user_id=user_id, limits=dict(values), updated_at=now, updated_by=actor_id)
                session.add(row)
            else:
                row.limits, row.updated_at, row.updated_by = dict(values), now, actor_id
            if old != dict(values):
                self._audit.record(
                    session,
                    "limits.override_set",
                    actor_id=actor_id,
                    subject_id=user_id,
                    address=address,
                    detail={"old": old, "new": dict(values)},
                )
            session.flush()
            return self._described(session, user, row)

    def clear_override(self, user_id: str, *, actor_id: str | None, address: str | None) -> None:
        with self._sessions.begin() as session:
            self._user(session, user_id)
            row = session.get(UserLimit, user_id)
            if row is None:
                return
            self._audit.record(
                session,
                "limits.override_cleared",
                actor_id=actor_id,
                subject_id=user_id,
                address=address,
                detail={"old": dict(row.limits)},
            )
            session.delete(row)

    async def aclose(self) -> None:
        await self.counters.aclose()
