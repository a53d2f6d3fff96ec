"""The gateway's OpenAPI document: its own routes described, not only the keys admin API.

The proxy, the listings, model management, health and metrics are plain Starlette routes (the proxy
is kept off FastAPI's request handling for speed), so FastAPI cannot describe them. They are
described here by routes that are never mounted: each names the request body a node accepts (the
node's own models, :mod:`avocado.node.api.schemas` and :mod:`avocado.node.api.openai_schemas`, since
the gateway forwards bodies as they come) and every status the route answers, the gateway's own
(401, 403, 404, 413, 429, 502, 503, 504) and those a node's answer passes on. A described route is
included only when the app serves its path, so the document never promises a route that is not there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from avocado.api_docs import MODEL_NAME_PATTERN, Responses, errors, ok, without_422
from avocado.node.api.docs import BLOB_DIGEST, BLOB_FOUND, BYTES
from avocado.node.api.openai_schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from avocado.node.api.schemas import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ShowRequest,
)
from avocado.node.api.transfer import PushRequest, TransferRequest

__all__ = ["described_routes", "install_openapi"]


Digest = Annotated[str, Path(pattern=BLOB_DIGEST)]
ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]
_WHY = {
    400: "The body is not what a node accepts (invalid JSON, no model, a bad option)",
    401: "No API key, or one the gateway does not accept (when keys are required)",
    403: "The key may not use this model, or this route",
    404: "No node has the model",
    413: "The body is too large",
    429: "A limit of the key is reached (Retry-After, x-ratelimit-* headers)",
    500: "The node failed",
    502: "No node could answer",
    503: "No node can take the request now (busy, draining, unhealthy)",
    504: "No node answered in time",
}
# The statuses each kind of route answers, besides its success.
_MODEL_ERRORS = (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)
_LISTING_ERRORS = (401, 403, 429)
_MANAGE_ERRORS = (400, 401, 403, 404, 500, 502, 503)


def _errors(statuses: Iterable[int], openai: bool = False) -> Responses:
    return errors(statuses, _WHY, "openai" if openai else "ollama")


def _ok(description: str, *kinds: str) -> Responses:
    return ok(description, *kinds)


def _model_routes(router: APIRouter) -> None:
    ollama_stream = _ok(
        "The answer: one JSON object, or NDJSON while streaming", "application/json", "application/x-ndjson"
    )
    openai_stream = _ok(
        "The answer: one JSON object, or server-sent events while streaming",
        "application/json",
        "text/event-stream",
    )
    plain = _ok("The answer", "application/json")
    ollama_errors, openai_errors = _errors(_MODEL_ERRORS), _errors(_MODEL_ERRORS, openai=True)

    @router.post("/api/generate", responses={**ollama_stream, **ollama_errors}, tags=["ollama"])
    def generate(body: GenerateRequest) -> None:
        """Generate a completion (Ollama), on a node that has the model."""

    @router.post("/api/chat", responses={**ollama_stream, **ollama_errors}, tags=["ollama"])
    def chat(body: ChatRequest) -> None:
        """Chat (Ollama), on a node that has the model."""

    @router.post("/api/embed", responses={**plain, **ollama_errors}, tags=["ollama"])
    def embed(body: EmbedRequest) -> None:
        """Embeddings (Ollama)."""

    @router.post("/api/embeddings", responses={**plain, **ollama_errors}, tags=["ollama"])
    def embeddings(body: EmbeddingsRequest) -> None:
        """Embeddings, Ollama's older route."""

    @router.post("/api/show", responses={**plain, **ollama_errors}, tags=["ollama"])
    def show(body: ShowRequest) -> None:
        """A model's details, from a node that has it."""

    @router.post("/v1/chat/completions", responses={**openai_stream, **openai_errors}, tags=["openai"])
    def chat_completions(body: ChatCompletionRequest) -> None:
        """Chat completions (OpenAI)."""

    @router.post("/v1/completions", responses={**openai_stream, **openai_errors}, tags=["openai"])
    def completions(body: CompletionRequest) -> None:
        """Completions (OpenAI)."""

    @router.post("/v1/embeddings", responses={**plain, **openai_errors}, tags=["openai"])
    def openai_embeddings(body: EmbeddingRequest) -> None:
        """Embeddings (OpenAI)."""


def _listing_routes(router: APIRouter) -> None:
    listing = _ok("The models the healthy nodes serve (those the key may use)", "application/json")

    @router.get("/api/version", responses=_ok("The version", "application/json"), tags=["ollama"])
    def version() -> None:
        """The gateway's version."""

    @router.get("/api/tags", responses={**listing, **_errors(_LISTING_ERRORS)}, tags=["ollama"])
    def tags() -> None:
        """The models of the healthy nodes, merged."""

    @router.get("/api/ps", responses={**listing, **_errors(_LISTING_ERRORS)}, tags=["ollama"])
    def ps() -> None:
        """The models loaded on the healthy nodes, merged."""

    @router.get("/v1/models", responses={**listing, **_errors(_LISTING_ERRORS, openai=True)}, tags=["openai"])
    def models() -> None:
        """The models of the healthy nodes (OpenAI)."""

    @router.get(
        "/v1/models/{model}",
        responses={**listing, **_errors((*_LISTING_ERRORS, 404), openai=True)},
        tags=["openai"],
    )
    def model(model: ModelPath) -> None:
        """One model (OpenAI)."""

    @router.get(
        "/api/avocado/nodes",
        responses={
            **_ok("The nodes: health, breaker, models, load", "application/json"),
            **_errors(_LISTING_ERRORS),
        },
        tags=["avocado"],
    )
    def nodes() -> None:
        """The gateway's nodes (never their keys)."""


def _management_routes(router: APIRouter) -> None:
    streamed = _ok(
        "Progress, as NDJSON (or one JSON object with stream false)",
        "application/json",
        "application/x-ndjson",
    )
    done = _ok("Done", "application/json")
    errors = _errors(_MANAGE_ERRORS)

    @router.post("/api/pull", responses={**streamed, **errors}, tags=["manage"])
    def pull(body: TransferRequest) -> None:
        """Pull a model onto a node (X-Avocado-Node names which)."""

    @router.post("/api/push", responses={**streamed, **errors}, tags=["manage"])
    def push(body: PushRequest) -> None:
        """Push a model from a node that has it."""

    @router.post("/api/create", responses={**streamed, **errors}, tags=["manage"])
    def create(body: CreateRequest) -> None:
        """Create a model on a node."""

    @router.post("/api/copy", responses={**done, **errors}, tags=["manage"])
    def copy(body: CopyRequest) -> None:
        """Copy a model on every node that has it."""

    @router.delete("/api/delete", responses={**done, **errors}, tags=["manage"])
    def delete(body: DeleteRequest) -> None:
        """Delete a model from every node that has it."""

    blob_errors = _errors(_MANAGE_ERRORS)

    @router.head(
        "/api/blobs/{digest}",
        response_class=Response,
        responses={**blob_errors, **BLOB_FOUND},
        tags=["manage"],
    )
    def blob_exists(digest: Digest) -> None:
        """Whether a node has a blob (no body: 200 or 404)."""

    @router.post(
        "/api/blobs/{digest}",
        responses={201: {"description": "Stored"}, **blob_errors},
        status_code=201,
        response_class=Response,
        tags=["manage"],
        openapi_extra=BYTES,
    )
    def blob_upload(digest: Digest) -> None:
        """Upload a blob to a node."""


def _service_routes(router: APIRouter) -> None:
    status = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}

    @router.get(
        "/health/live",
        responses={
            200: {"description": "The process answers", "content": {"application/json": {"schema": status}}}
        },
        tags=["health"],
    )
    def live() -> None:
        """Liveness; no key needed."""

    unready = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["status", "reasons"],
    }

    @router.get(
        "/health/ready",
        responses={
            200: {"description": "Ready", "content": {"application/json": {"schema": status}}},
            503: {"description": "Not ready, and why", "content": {"application/json": {"schema": unready}}},
        },
        tags=["health"],
    )
    def ready() -> None:
        """Readiness: the database answers and a node can take requests; no key needed."""

    @router.get(
        "/metrics",
        responses={
            200: {
                "description": "Prometheus exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **_errors((401, 403)),
        },
        tags=["metrics"],
    )
    def metrics() -> None:
        """Prometheus metrics: the master key or the metrics token when keys are required."""


def described_routes() -> list[APIRoute]:
    """Every route the gateway may serve outside FastAPI, described (never mounted)."""
    router = APIRouter()
    for add in (_model_routes, _listing_routes, _management_routes, _service_routes):
        add(router)
    return [route for route in router.routes if isinstance(route, APIRoute)]


def _served(routes: Sequence[BaseRoute]) -> set[tuple[str, str]]:
    served = set()
    for route in routes:
        if isinstance(route, Route) and not isinstance(route, APIRoute):
            for method in route.methods or ():
                served.add((route.path.replace("{model:path}", "{model}"), method))
    return served


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the gateway's own routes too (those it serves, as it serves them)."""
    described = described_routes()

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            served = _served(app.routes)
            extra = [
                route
                for route in described
                if any((route.path, method) in served for method in route.methods or ())
            ]
            document = get_openapi(title=app.title, version=app.version, routes=[*app.routes, *extra])
            app.openapi_schema = without_422(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
