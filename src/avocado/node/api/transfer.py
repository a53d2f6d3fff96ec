"""``/api/pull`` and ``/api/push``: models to and from a registry, with Ollama's progress stream.

The transfer runs in a worker thread and reports through a queue. A pull fetches its manifest
before the response starts, so an unknown model is a plain HTTP 404; later failures arrive as an
``{"error": ...}`` line. If the client goes away, the transfer is told to stop; a pull keeps its
partial download, so the next pull resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, WithJsonSchema

from avocado.api_docs import PULL_SOURCE
from avocado.names import ModelName
from avocado.node.api import docs
from avocado.node.api.deps import Service
from avocado.node.api.schemas import ModelNameText, model_required
from avocado.node.api.streaming import progress_response, thread_stream
from avocado.node.registry.client import Progress, Puller, Pusher
from avocado.node.registry.files import FilePuller, is_url_source
from avocado.node.registry.guard import PullPolicy
from avocado.node.service import BadRequest
from avocado.node.store.building import looks_like_path

__all__ = ["PushRequest", "TransferRequest", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["ollama"])


class TransferRequest(BaseModel):
    """Body of ``/api/pull`` and ``/api/push``; older clients send ``name`` instead of ``model``."""

    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra=model_required)

    model: Annotated[str, WithJsonSchema(PULL_SOURCE)] = ""
    name: str = ""
    insecure: bool | None = False
    stream: bool | None = True

    @property
    def model_name(self) -> ModelName:
        text = self.model or self.name
        if not text:
            raise BadRequest("model is required")
        return ModelName.parse(text)


class PushRequest(TransferRequest):
    """Body of ``/api/push``: a model name (its host is the registry pushed to), never a URL."""

    model: ModelNameText = ""


LOCAL_PATH_REFUSED = (
    "{source!r} is a path: a node never reads files on its own disk for a request. Send the file as a "
    "blob (POST /api/blobs/sha256:<digest>) and create the model from it (POST /api/create with "
    "'files'), as `avocado pull PATH` and `avocado create` do"
)


@router.post("/api/pull", response_model=None, responses=docs.STREAMED_PROGRESS)
async def pull(req: TransferRequest, svc: Service, request: Request) -> Response:
    source = req.model or req.name
    policy = PullPolicy.from_settings(svc.settings)
    if is_url_source(source):  # a GGUF file by URL rather than a model in a registry
        job = FilePuller(svc.store, source, policy).run
        return await progress_response(thread_stream(job), req.stream, request)
    if looks_like_path(source):
        raise BadRequest(LOCAL_PATH_REFUSED.format(source=source[:200]))
    puller = Puller(svc.store, req.model_name, insecure=bool(req.insecure), policy=policy)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        manifest = await asyncio.to_thread(puller.fetch_manifest)  # before the first line: errors are HTTP
        yield {"status": "pulling manifest"}

        def job(progress: Progress, cancel: threading.Event) -> None:
            puller.run(manifest, progress, cancel)

        async with aclosing(thread_stream(job)) as items:
            async for item in items:
                yield item

    return await progress_response(stream(), req.stream, request)


@router.post("/api/push", response_model=None, responses=docs.STREAMED_PROGRESS)
async def push(req: PushRequest, svc: Service, request: Request) -> Response:
    policy = PullPolicy.from_settings(svc.settings)
    pusher = await asyncio.to_thread(Pusher, svc.store, req.model_name, bool(req.insecure), policy)
    return await progress_response(thread_stream(pusher.run), req.stream, request)
