"""Who may call the gateway: the :class:`~avocado.gateway.hooks.Admission` for virtual API keys.

The key comes from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``. The master key passes
with no limits; a key of the database passes if it is active and allows the model (a revoked or
expired one is refused, whether keys are required or not: it names a caller whose access was ended,
and letting it in as anonymous would lift its limits). Without a key, or with a key the gateway does
not know, the request passes as anonymous unless keys are required: OpenAI's SDKs always send one
(``api_key="unused"``), and a gateway that asks for none must not turn them away. What passes gets
a :class:`KeyTicket` whose ``limits`` (a :class:`avocado.gateway.limits.KeyLimits`) the limiter
chained after this enforces: ``limiter.acquire(ticket.key_id, limits)`` with
``limits = ticket_limits(ticket)`` when that is not ``None``. :meth:`KeyAdmission.finish` counts the
request's tokens for its key, and for the user a caller with a key (the master key or one of the
database: a platform's service credential) named in ``X-Avocado-User``; an anonymous caller's
header is ignored (it could name anyone).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from avocado.gateway.hooks import Outcome, Refused, Ticket
from avocado.gateway.keys.service import KeyService
from avocado.gateway.limits import KeyLimits

__all__ = [
    "USER_HEADER",
    "KeyAdmission",
    "KeyTicket",
    "bearer_key",
    "master_guard",
    "metrics_guard",
    "ticket_limits",
]

Caller = Literal["key", "master", "anonymous"]

USER_HEADER = "x-avocado-user"  # the platform names the user it calls for (its user id)
_MAX_USER = 64


@dataclass(slots=True)
class KeyTicket(Ticket):
    """A :class:`Ticket` that also says who the caller is and what limits its key has."""

    caller: Caller = "anonymous"
    limits: KeyLimits | None = None  # None: no limits (master key, anonymous)
    user: str | None = None  # the user the caller named in X-Avocado-User (callers with a key only)


def ticket_limits(ticket: Ticket) -> KeyLimits | None:
    """The limits to enforce for ``ticket`` (``None``: none), whatever admission made it."""
    return ticket.limits if isinstance(ticket, KeyTicket) else None


def bearer_key(request: Request) -> str | None:
    """The key the client sent: ``Authorization: Bearer <key>``, else ``x-api-key``."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return request.headers.get("x-api-key", "").strip() or None


def named_user(request: Request) -> str | None:
    """``X-Avocado-User`` when it is a plausible id (printable, at most 64 characters); anything
    else is left out of the counts rather than refusing a request over a label."""
    value = request.headers.get(USER_HEADER, "").strip()
    if not value or len(value) > _MAX_USER or not value.isprintable():
        return None
    return value


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def master_guard(
    master_key: str | None, keys_required: bool, open_to_all: bool = False
) -> Callable[[Request], Awaitable[None]]:
    """A check for admin-only routes (model management): the master key when one is configured;
    without one, everyone on a gateway that requires no keys (one user), no one on a gateway that does.
    ``open_to_all`` lets everyone in on a gateway that requires no keys, master key or not (``avocado up``).
    """
    expected = master_key or None
    everyone = not keys_required and (expected is None or open_to_all)

    async def guard(request: Request) -> None:
        if everyone:
            return
        if expected is None:
            raise Refused(403, "model management is disabled: the gateway has no master key")
        given = bearer_key(request)
        if given is None:
            raise Refused(401, "model management needs the master key: Authorization: Bearer <key>")
        if not _same(given, expected):
            raise Refused(403, "model management needs the master key")

    return guard


def metrics_guard(
    master_key: str | None, metrics_token: str | None, keys_required: bool
) -> Callable[[Request], Awaitable[None]]:
    """A check for ``GET /metrics``: open on a gateway that requires no keys; otherwise the master key
    or ``metrics_token`` (a scraper's credential that opens nothing else)."""
    accepted = [token for token in (master_key, metrics_token) if token]

    async def guard(request: Request) -> None:
        if not keys_required:
            return
        if not accepted:
            raise Refused(403, "metrics are disabled: set a metrics_token (or a master key) to scrape them")
        given = bearer_key(request)
        if given is None:
            raise Refused(401, "metrics need a token: Authorization: Bearer <metrics token or master key>")
        if not any(_same(given, token) for token in accepted):
            raise Refused(403, "metrics need the metrics token or the master key")

    return guard


class KeyAdmission:
    """Admits callers by API key; ``require_key=False`` lets callers without a key (or with a key it
    does not know) in, unlimited."""

    def __init__(self, service: KeyService, master_key: str | None, require_key: bool) -> None:
        self.service = service
        self.master_key = master_key or None
        self.require_key = require_key

    async def admit(self, request: Request, model: str | None) -> Ticket:
        key = bearer_key(request)
        if key is None:
            if self.require_key:
                raise Refused(401, "missing API key: send Authorization: Bearer <key>")
            return KeyTicket(caller="anonymous")
        if self.master_key is not None and _same(key, self.master_key):
            return KeyTicket(key_name="master", caller="master", user=named_user(request))
        record = await self.service.alookup(key)
        if record is None:
            if self.require_key:
                raise Refused(401, "invalid API key")
            return KeyTicket(caller="anonymous")
        state = record.state(self.service.now())
        if state != "active":
            raise Refused(401, f"API key {state}")
        if model is not None and not record.allows(model):
            raise Refused(403, f"API key '{record.name}' may not use model '{model}'")
        return KeyTicket(
            key_id=record.id,
            key_name=record.name,
            allowed_models=None if record.allowed_models is None else list(record.allowed_models),
            caller="key",
            limits=record.limits,
            user=named_user(request),
        )

    async def finish(self, ticket: Ticket, outcome: Outcome) -> None:
        user = ticket.user if isinstance(ticket, KeyTicket) else None
        if ticket.key_id is not None or user is not None:
            self.service.record_usage(ticket.key_id, outcome.tokens_in, outcome.tokens_out, user)
