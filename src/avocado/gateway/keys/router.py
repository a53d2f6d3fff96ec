"""The admin API for keys, under ``/api/avocado/keys``, for holders of the master key only.

``POST`` creates (``201``, the full key shown this once), ``GET`` lists or shows one, ``DELETE``
revokes (``204``). A revoked key is gone as a resource (``GET`` of it is ``404``) but stays in the
list, with its status and usage, for the record. Every error is ``{"error": "..."}``: ``400`` for
bad input (FastAPI's ``422`` included), ``401`` without the master key, ``403`` when no master key is
configured, ``404`` for an unknown id. The router handles its own errors, so it behaves the same on
any app it is mounted on.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from avocado.gateway.keys.admission import bearer_key
from avocado.gateway.keys.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyPublic,
    UserUsageList,
    UserUsagePublic,
)
from avocado.gateway.keys.service import KeyService

__all__ = ["KEYS_PATH", "AdminError", "keys_router"]

KEYS_PATH = "/api/avocado/keys"


class AdminError(Exception):
    """An admin request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _describe(exc: RequestValidationError) -> str:
    """Pydantic's errors as one readable line: ``rpm: Input should be greater than or equal to 1``."""
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return "invalid JSON in request body"
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc and error.get("type") == "missing":
            message = "a JSON body is required"
        problems.append(f"{loc}: {message}" if loc else message)
    return "; ".join(problems) or "invalid request"


class _AdminRoute(APIRoute):
    """Turns this router's errors into ``{"error": ...}`` whatever handlers the app has."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except AdminError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except RequestValidationError as exc:
                return JSONResponse({"error": _describe(exc)}, status_code=400)

        return guarded


def _master_guard(master_key: str | None) -> Callable[[Request], Awaitable[None]]:
    expected = master_key.encode() if master_key else None

    async def require_master(request: Request) -> None:  # async: a plain def runs in a thread
        if expected is None:
            raise AdminError(403, "the admin API is disabled: the gateway has no master key")
        given = bearer_key(request)
        if given is None:
            raise AdminError(401, "the admin API needs the master key: Authorization: Bearer <key>")
        if not hmac.compare_digest(given.encode(), expected):
            raise AdminError(401, "invalid master key")

    return require_master


_WHY = {
    400: "Bad input (a readable message)",
    401: "No master key, or the wrong one",
    403: "The gateway has no master key: the admin API is off",
    404: "No such key, or one that was revoked (GET /api/avocado/keys still lists it, with its usage)",
}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI for the errors, all ``{"error": "..."}``."""
    schema = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    return {
        status: {"description": _WHY[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }


def keys_router(service: KeyService, master_key: str | None) -> APIRouter:
    """The admin routes over ``service``; only ``master_key`` opens them (``None``: nothing does)."""
    router = APIRouter(
        prefix=KEYS_PATH,
        tags=["keys"],
        route_class=_AdminRoute,
        dependencies=[Depends(_master_guard(master_key))],
        responses=_responses(401, 403),
    )

    def _found(key_id: str) -> KeyPublic:
        record = service.get(key_id)
        if record is None:
            raise AdminError(404, f"API key '{key_id}' not found")
        if record.revoked_at is not None:
            revoked = record.revoked_at.isoformat().replace("+00:00", "Z")
            raise AdminError(404, f"API key '{key_id}' was revoked at {revoked}; the list still shows it")
        return KeyPublic.from_record(record, service.now())

    @router.post("", status_code=201, responses=_responses(400))
    def create_key(spec: KeyCreate) -> KeyCreated:
        record, key = service.create(spec)
        return KeyCreated.from_new(record, key, service.now())

    @router.get("")
    def list_keys() -> KeyList:
        now = service.now()
        return KeyList(keys=[KeyPublic.from_record(record, now) for record in service.list()])

    @router.get("/users")
    def usage_by_user(user: str | None = None, key_id: str | None = None) -> UserUsageList:
        """Usage per user named in ``X-Avocado-User`` by a key (``key_id`` ``master``: the master key),
        most requests first; written every ``flush_interval``, so the last seconds may be missing."""
        rows = service.user_usage(user=user, key_id=key_id)
        return UserUsageList(
            usage=[
                UserUsagePublic(
                    key_id=row.key_id,
                    user=row.user_id,
                    requests=row.requests,
                    tokens_in=row.tokens_in,
                    tokens_out=row.tokens_out,
                    last_used_at=row.last_used_at,
                )
                for row in rows
            ]
        )

    @router.get("/{key_id}", responses=_responses(404))
    def get_key(key_id: str) -> KeyPublic:
        return _found(key_id)

    @router.delete("/{key_id}", status_code=204, responses=_responses(404))
    def revoke_key(key_id: str) -> Response:
        if service.revoke(key_id) is None:
            raise AdminError(404, f"API key '{key_id}' not found")
        return Response(status_code=204)

    return router
