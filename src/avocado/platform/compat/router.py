"""``/v1/models`` and ``/v1/chat/completions``: the OpenAI-compatible API for scripts, so the official
``openai`` client works unchanged with ``base_url=<platform>/v1`` and a personal API key.

A caller is a personal API key (``avk_...``) or an access token; either acts as its user, who sees
only the models their limits let them see (another is ``404``, as an unknown model) and is held to
their limits: requests per minute and at once, tokens per day (``429`` with ``Retry-After``), the
tokens counted from each answer's usage. Errors are OpenAI's shape (``{"error": {...}}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from avocado.platform.accounts import dependencies as auth
from avocado.platform.accounts.apikeys import KEY_PREFIX
from avocado.platform.catalog.schemas import ModelPublic
from avocado.platform.compat.errors import OpenAIError
from avocado.platform.compat.service import Forwarded
from avocado.platform.compat.usage import UsageMeter, ask_for_usage
from avocado.platform.deps import Services
from avocado.platform.errors import PlatformError
from avocado.platform.limits.errors import LimitExceeded
from avocado.platform.limits.schemas import LimitValues
from avocado.platform.limits.service import Admission
from avocado.platform.state import Platform, platform_of

__all__ = ["compat_router"]

_ERROR = {
    "description": 'OpenAI\'s error shape: {"error": {"message", "type", "param", "code"}}',
    "content": {
        "application/json": {"schema": {"type": "object", "properties": {"error": {"type": "object"}}}}
    },
}
compat_router = APIRouter(
    prefix="/v1", tags=["openai"], responses={401: _ERROR, 404: _ERROR, 429: _ERROR, 502: _ERROR}
)


@dataclass(frozen=True, slots=True)
class CallerAccount:
    id: str
    role: str


async def _caller(request: Request) -> CallerAccount:
    """The user a personal API key or an access token acts for."""
    credentials: HTTPAuthorizationCredentials | None = await auth.bearer(request)
    platform = platform_of(request)
    if credentials is None:
        raise OpenAIError(
            "no API key: send Authorization: Bearer <personal API key>", status=401, code="invalid_api_key"
        )
    try:
        if credentials.credentials.startswith(KEY_PREFIX):
            owner = await run_in_threadpool(platform.keys.authenticate, credentials.credentials)
            return CallerAccount(owner.user_id, owner.role)
        principal = auth.principal_from(request, credentials)
        user = await auth.current_user(request, principal)
    except PlatformError as exc:
        raise OpenAIError(exc.detail, status=401, code="invalid_api_key") from None
    return CallerAccount(user.id, user.role)


Caller = Annotated[CallerAccount, Depends(_caller)]


async def _visible(platform: Platform, caller: CallerAccount) -> tuple[list[ModelPublic], LimitValues]:
    """The models the caller may see, and the limits that apply to them."""
    limits = await platform.limits.effective(caller)
    try:
        models = await platform.catalog.models(caller.id)
    except PlatformError as exc:
        raise OpenAIError(exc.detail, status=exc.status) from None
    return await platform.limits.visible(caller, models, lambda model: model.name, effective=limits), limits


def _openai_model(model: ModelPublic) -> dict[str, Any]:
    created = int(model.modified_at.timestamp()) if model.modified_at is not None else 0
    return {"id": model.name, "object": "model", "created": created, "owned_by": "library"}


def _named(models: list[ModelPublic], name: str) -> ModelPublic | None:
    """``name`` as listed, or with the ``:latest`` tag Ollama-compatible servers add when none is given."""
    wanted = {name} if ":" in name else {name, f"{name}:latest"}
    return next((model for model in models if model.name in wanted), None)


@compat_router.get("/models")
async def list_models(caller: Caller, platform: Services) -> dict[str, Any]:
    """The models this user may use, as OpenAI lists them."""
    models, _ = await _visible(platform, caller)
    return {"object": "list", "data": [_openai_model(model) for model in models]}


@compat_router.get("/models/{model:path}")
async def get_model(model: str, caller: Caller, platform: Services) -> dict[str, Any]:
    found = _named((await _visible(platform, caller))[0], model)
    if found is None:
        raise _not_found(model)
    return _openai_model(found)


def _not_found(model: str) -> OpenAIError:
    return OpenAIError(f"model '{model}' not found", status=404, code="model_not_found", param="model")


def _checked(raw: bytes) -> dict[str, Any]:
    """The request as JSON, with the fields the platform reads; the rest is the upstream's to judge."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise OpenAIError("the request body must be JSON", status=400) from None
    if not isinstance(body, dict):
        raise OpenAIError("the request body must be a JSON object", status=400)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise OpenAIError("model: a model name is required", status=400, param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise OpenAIError("messages: a non-empty list of messages is required", status=400, param="messages")
    return body


async def _admitted(admission: Admission) -> Admission:
    try:
        return await admission.acquire()
    except LimitExceeded as exc:
        kind = "tokens" if exc.reason == "tokens_per_day" else "requests"
        raise OpenAIError(
            exc.detail, status=429, code="rate_limit_exceeded", kind=kind, headers=exc.headers
        ) from None


class _Metered(StreamingResponse):
    """The upstream's answer passed on as it comes, its tokens counted; when it is over (or the
    client left, or it never started) the upstream request and the admission end."""

    def __init__(self, forwarded: Forwarded, admission: Admission, meter: UsageMeter) -> None:
        self.forwarded, self.admission, self.meter = forwarded, admission, meter
        self.counting = 200 <= forwarded.status < 300
        super().__init__(
            self._chunks(),
            status_code=forwarded.status,
            headers=forwarded.headers,
            media_type=forwarded.media_type,
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.forwarded.body():
            passed = self.meter.feed(chunk) if self.counting else chunk
            if passed:
                yield passed
        if self.counting and (rest := self.meter.finish()):
            yield rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.forwarded.aclose()
            await self.admission.release()
            if self.counting:
                await self.admission.record_tokens(self.meter.tokens)


@compat_router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}, 429: _ERROR})
async def chat_completions(request: Request, caller: Caller, platform: Services) -> Response:
    """OpenAI's chat completions (``stream: true`` included), answered by the upstream as this user,
    under their limits."""
    raw = await request.body()
    body = _checked(raw)
    visible, limits = await _visible(platform, caller)
    found = _named(visible, body["model"])
    if found is None:
        raise _not_found(body["model"])
    admission = await _admitted(platform.limits.admit(caller, found.name, effective=limits))
    try:
        drop_usage = ask_for_usage(body)
        forwarded = await platform.upstream.chat(json.dumps(body).encode() if drop_usage else raw, caller.id)
    except BaseException:
        await admission.release()
        raise
    streaming = forwarded.media_type.startswith("text/event-stream")
    return _Metered(forwarded, admission, UsageMeter(streaming=streaming, drop_usage=drop_usage))
