"""Model management through the gateway: Ollama's pull, push, create, copy, delete and blob routes.

The gateway passes them on to nodes, so ``ollama pull`` or ``avocado pull`` pointed at the gateway
installs a model where requests will find it. Which node:

- the one the caller names with an ``X-Avocado-Node`` header or ``?node=`` (its name or URL, as
  ``GET /api/avocado/nodes`` shows them);
- otherwise ``pull``, ``create`` and the blob routes go to the only node taking requests (with several,
  the caller is asked to name one, since each node has its own disk), ``push`` to a node that has the
  model, and ``copy`` and ``delete`` to every node that has it, so the merged model list changes as the
  caller expects.

Answers (pull progress included) stream through as they come, and uploads of blobs stream to the node
without being held here. A node that changed is checked before the answer ends, so the next
``/api/tags`` already shows the change. Who may call these routes is the ``guard``'s decision
(:func:`avocado.gateway.keys.master_guard`: the master key, or anyone on a gateway with no keys).

Off the request path, so written with httpx and Starlette responses rather than the lean proxy's ASGI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from avocado.gateway.asgi import FORWARDED, response_headers
from avocado.gateway.errors import error_response
from avocado.gateway.exchange import BadBody, model_of
from avocado.gateway.hooks import Refused
from avocado.gateway.nodes import Node, NodePool, describe_error, normalize_model
from avocado.request_id import request_id_of

__all__ = ["NODE_HEADER", "Management", "ManagementGuard"]

log = logging.getLogger(__name__)
request_log = logging.getLogger("avocado.request")

NODE_HEADER = "x-avocado-node"
ManagementGuard = Callable[[Request], Awaitable[None]]  # raises Refused for callers who may not manage
_STREAMED = (b"application/x-ndjson", b"text/event-stream")


class _Answer(Exception):
    """Answer the request with this error instead of forwarding it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Management:
    """The management routes over ``pool``; ``guard`` (if any) checks every caller first."""

    def __init__(self, pool: NodePool, guard: ManagementGuard | None = None) -> None:
        self.pool = pool
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/api/pull", self._guarded(self.pull), methods=["POST"]),
            Route("/api/create", self._guarded(self.create), methods=["POST"]),
            Route("/api/push", self._guarded(self.push), methods=["POST"]),
            Route("/api/copy", self._guarded(self.copy), methods=["POST"]),
            Route("/api/delete", self._guarded(self.delete), methods=["DELETE"]),
            Route("/api/blobs/{digest}", self._guarded(self.blob), methods=["HEAD", "POST"]),
        ]

    def _guarded(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if self.guard is not None:
                    await self.guard(request)
                response = await handler(request)
            except Refused as refused:
                response = error_response(request.url.path, refused.status, refused.message)
            except _Answer as answer:
                response = error_response(request.url.path, answer.status, answer.message)
            _log(request, response, started)
            return response

        return endpoint

    # -- routes ---------------------------------------------------------------------------------------

    async def pull(self, request: Request) -> Response:
        return await self._forward(request, self._one_node(request), await request.body())

    async def create(self, request: Request) -> Response:
        return await self._forward(request, self._one_node(request), await request.body())

    async def blob(self, request: Request) -> Response:
        node = self._one_node(request)
        if request.method == "HEAD":
            return await self._forward(request, node, b"")
        return await self._forward(request, node, request.stream())

    async def push(self, request: Request) -> Response:
        body = await request.body()
        holders = self._holders(request, _model(request, body))
        return await self._forward(request, holders[0], body)

    async def copy(self, request: Request) -> Response:
        body = await request.body()
        return await self._fan_out(request, self._holders(request, _copy_source(body)), body)

    async def delete(self, request: Request) -> Response:
        body = await request.body()
        return await self._fan_out(request, self._holders(request, _model(request, body)), body)

    # -- which nodes ----------------------------------------------------------------------------------

    def _named(self, request: Request) -> Node | None:
        """The node the caller named, if any; an unknown or departed name is an error."""
        wanted = request.headers.get(NODE_HEADER) or request.query_params.get("node")
        if not wanted:
            return None
        wanted = wanted.strip().rstrip("/")
        for node in self.pool.nodes:
            if not node.gone and wanted in (node.name, node.url):
                return node
        raise _Answer(404, f"no node '{wanted}': see GET /api/avocado/nodes for their names")

    def _one_node(self, request: Request) -> Node:
        named = self._named(request)
        if named is not None:
            return named
        live = [node for node in self.pool.nodes if node.routable]
        if not live:
            raise _Answer(503, "no healthy node is available")
        if len(live) > 1:
            names = ", ".join(node.name for node in live)
            raise _Answer(
                400, f"several nodes take requests ({names}): name one with the X-Avocado-Node header"
            )
        return live[0]

    def _holders(self, request: Request, model: str) -> list[Node]:
        """The named node, or every healthy node that has ``model``; none is Ollama's 404."""
        named = self._named(request)
        if named is not None:
            return [named]
        try:
            name = normalize_model(model)
        except ValueError as exc:
            raise _Answer(400, str(exc)) from None
        holders = [node for node in self.pool.nodes if node.healthy and not node.gone and name in node.models]
        if not holders:
            raise _Answer(404, f"model '{model}' not found")
        return holders

    # -- forwarding -----------------------------------------------------------------------------------

    def _request(self, request: Request, node: Node, body: bytes | AsyncIterator[bytes]) -> httpx.Request:
        headers = [(k, v) for k, v in request.headers.raw if k in FORWARDED or k == b"content-length"]
        headers.append((b"x-request-id", request_id_of(request.scope).encode()))
        headers.extend(node.auth)
        # The path as the client sent it, still percent-encoded: decoded, a %18 in it is a control
        # character that no URL may hold (httpx refuses to build one; that was a 500).
        path = request.scope.get("raw_path", b"").decode("latin-1").partition("?")[0] or request.url.path
        return self.pool.client.build_request(request.method, node.url + path, content=body, headers=headers)

    async def _forward(self, request: Request, node: Node, body: bytes | AsyncIterator[bytes]) -> Response:
        """``request`` to ``node``; its answer back as it comes, streamed or whole."""
        request.state.nodes = [node.name]
        try:
            response = await self.pool.client.send(self._request(request, node, body), stream=True)
        except httpx.HTTPError as exc:
            return self._unreachable(request, node, exc)
        headers = _headers(response)
        kind = response.headers.get("content-type", "").encode()
        if not kind.startswith(_STREAMED):
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:
                return self._unreachable(request, node, exc)
            finally:
                await response.aclose()
            await self._changed(request, [node], response.status_code)
            return Response(content, response.status_code, headers)
        return StreamingResponse(self._relay(request, node, response), response.status_code, headers)

    async def _relay(self, request: Request, node: Node, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            log.warning("gateway: node %s broke off %s: %s", node.name, request.url.path, describe_error(exc))
            line = {"error": f"the node broke off the answer: {describe_error(exc)}"}
            yield b"\n" + json.dumps(line).encode() + b"\n"
        finally:
            await response.aclose()
        await self._changed(request, [node], response.status_code)

    async def _fan_out(self, request: Request, nodes: list[Node], body: bytes) -> Response:
        """The same request to each of ``nodes``: the answer when all agree, else what went wrong where."""
        request.state.nodes = [node.name for node in nodes]
        answers = await asyncio.gather(*(self._send(request, node, body) for node in nodes))
        await self._changed(request, nodes, 200)
        failed = [(node, answer) for node, answer in zip(nodes, answers, strict=True) if answer[0] >= 300]
        if not failed:
            return Response(answers[0][1], answers[0][0], answers[0][2])
        if len(failed) == len(nodes) and len({answer[0] for _, answer in failed}) == 1:
            status, content, headers = failed[0][1]
            return Response(content, status, headers)
        done = [node.name for node in nodes if all(node is not f for f, _ in failed)]
        problems = "; ".join(f"{node.name}: {_message(answer)}" for node, answer in failed)
        where = f" (done on {', '.join(done)})" if done else ""
        return error_response(request.url.path, 502, f"failed on some nodes{where}: {problems}")

    async def _send(self, request: Request, node: Node, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        try:
            response = await self.pool.client.send(self._request(request, node, body))
        except httpx.HTTPError as exc:
            node.failed(describe_error(exc))
            message = json.dumps({"error": f"unreachable: {describe_error(exc)}"}).encode()
            return 502, message, {"content-type": "application/json"}
        return response.status_code, response.content, _headers(response)

    def _unreachable(self, request: Request, node: Node, exc: httpx.HTTPError) -> Response:
        node.failed(describe_error(exc))
        log.warning("gateway: %s on node %s failed: %s", request.url.path, node.name, describe_error(exc))
        message = f"node {node.name} could not be reached: {describe_error(exc)}"
        return error_response(request.url.path, 502, message)

    async def _changed(self, request: Request, nodes: list[Node], status: int) -> None:
        """Check nodes whose models may have changed, so that listings show it at once."""
        if request.method != "HEAD" and status < 300:
            await asyncio.gather(*(self.pool.check(node) for node in nodes))


def _log(request: Request, response: Response, started: float) -> None:
    """A line per management request, as the proxy writes one per model request (a stream's line
    is written when its answer starts)."""
    if not request_log.isEnabledFor(logging.INFO):
        return
    fields = {
        "method": request.method,
        "path": request.url.path,
        "node": ",".join(getattr(request.state, "nodes", [])) or None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "request_id": request_id_of(request.scope),
    }
    request_log.info("request", extra={"fields": fields})


def _headers(response: httpx.Response) -> dict[str, str]:
    kept = response_headers(response.headers.raw)
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in kept
        if name.lower() != b"content-length"
    }


def _model(request: Request, body: bytes) -> str:
    try:
        return model_of(request.url.path, body)
    except BadBody as bad:
        raise _Answer(400, str(bad)) from None


def _copy_source(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        raise _Answer(400, "invalid JSON in request body") from None
    if not isinstance(data, dict) or not isinstance(data.get("source"), str) or not data["source"]:
        raise _Answer(400, "source is required")
    if not isinstance(data.get("destination"), str) or not data["destination"]:
        raise _Answer(400, "destination is required")
    return str(data["source"])


def _message(answer: tuple[int, bytes, dict[str, str]]) -> str:
    status, content, _ = answer
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else f"HTTP {status}"
