"""``/v1/models`` and ``/v1/chat/completions``: the OpenAI-compatible API for scripts, so the official
``openai`` client works unchanged with ``base_url=<platform>/v1`` and a personal API key.

A caller is a personal API key (``avk_...``) or an access token; either acts as its user, who sees
only the models the catalog lets them see. Errors are OpenAI's shape (``{"error": {...}}``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from avocado.platform.accounts import dependencies as auth
from avocado.platform.accounts.apikeys import KEY_PREFIX
from avocado.platform.catalog.schemas import ModelPublic
from avocado.platform.compat.errors import OpenAIError
from avocado.platform.errors import PlatformError
from avocado.platform.state import Platform, platform_of

__all__ = ["compat_router"]

_ERROR = {
    "description": 'OpenAI\'s error shape: {"error": {"message", "type", "param", "code"}}',
    "content": {
        "application/json": {"schema": {"type": "object", "properties": {"error": {"type": "object"}}}}
    },
}
compat_router = APIRouter(prefix="/v1", tags=["openai"], responses={401: _ERROR, 404: _ERROR, 502: _ERROR})


async def _caller(request: Request) -> str:
    """The user id a personal API key or an access token acts for."""
    credentials: HTTPAuthorizationCredentials | None = await auth.bearer(request)
    platform = platform_of(request)
    if credentials is None:
        raise OpenAIError(
            "no API key: send Authorization: Bearer <personal API key>", status=401, code="invalid_api_key"
        )
    try:
        if credentials.credentials.startswith(KEY_PREFIX):
            owner = await run_in_threadpool(platform.keys.authenticate, credentials.credentials)
            return owner.user_id
        principal = auth.principal_from(request, credentials)
        user = await auth.current_user(request, principal)
    except PlatformError as exc:
        raise OpenAIError(exc.detail, status=401, code="invalid_api_key") from None
    return user.id


Caller = Annotated[str, Depends(_caller)]
Services = Annotated[Platform, Depends(platform_of)]


async def _visible(platform: Platform, user_id: str) -> list[ModelPublic]:
    try:
        return await platform.catalog.models(user_id)
    except PlatformError as exc:
        raise OpenAIError(exc.detail, status=exc.status) from None


def _openai_model(model: ModelPublic) -> dict[str, Any]:
    created = int(model.modified_at.timestamp()) if model.modified_at is not None else 0
    return {"id": model.name, "object": "model", "created": created, "owned_by": "library"}


def _named(models: list[ModelPublic], name: str) -> ModelPublic | None:
    """``name`` as listed, or with the ``:latest`` tag Ollama-compatible servers add when none is given."""
    wanted = {name} if ":" in name else {name, f"{name}:latest"}
    return next((model for model in models if model.name in wanted), None)


@compat_router.get("/models")
async def list_models(user_id: Caller, platform: Services) -> dict[str, Any]:
    """The models this user may use, as OpenAI lists them."""
    models = await _visible(platform, user_id)
    return {"object": "list", "data": [_openai_model(model) for model in models]}


@compat_router.get("/models/{model:path}")
async def get_model(model: str, user_id: Caller, platform: Services) -> dict[str, Any]:
    found = _named(await _visible(platform, user_id), model)
    if found is None:
        raise OpenAIError(f"model '{model}' not found", status=404, code="model_not_found", param="model")
    return _openai_model(found)


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


@compat_router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(request: Request, user_id: Caller, platform: Services) -> Response:
    """OpenAI's chat completions (``stream: true`` included), answered by the upstream as this user."""
    raw = await request.body()
    body = _checked(raw)
    if _named(await _visible(platform, user_id), body["model"]) is None:
        raise OpenAIError(
            f"model '{body['model']}' not found", status=404, code="model_not_found", param="model"
        )
    forwarded = await platform.upstream.chat(raw, user_id)
    return StreamingResponse(
        forwarded.body(),
        status_code=forwarded.status,
        media_type=forwarded.media_type,
        headers=forwarded.headers,
    )
