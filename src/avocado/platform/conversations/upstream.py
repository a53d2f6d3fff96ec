"""Chat with a model upstream (our gateway, a node or a plain Ollama) over Ollama's ``/api/chat``.

The platform calls with its service credential and names the user in ``X-Avocado-User`` so usage is
theirs; our gateway answers which node served in ``X-Avocado-Node``. Answers stream as NDJSON: each
piece of text as it comes, then the model's counts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from avocado.platform.catalog.service import USER_HEADER
from avocado.redact import redact_url

__all__ = ["NODE_HEADER", "ChatUpstream", "Ending", "UpstreamFailure"]

log = logging.getLogger(__name__)

NODE_HEADER = "x-avocado-node"


class UpstreamFailure(Exception):
    """The model server failed the request; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How an answer ended: the model's counts and timings, and why it stopped."""

    usage: dict[str, Any]
    done_reason: str | None


def _error_of(body: bytes, status: int) -> str:
    try:
        detail = json.loads(body).get("error")
    except (ValueError, AttributeError):
        detail = None
    return f"the model server answered {status}" + (f": {detail}" if isinstance(detail, str) else "")


class ChatUpstream:
    def __init__(self, base_url: str, api_key: str | None, *, read_timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.where = redact_url(self.base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(10.0, read=read_timeout)
        limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, limits=limits
        )

    def _body(
        self, model: str, messages: Sequence[Mapping[str, str]], options: Mapping[str, Any], stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
        chosen = {name: value for name, value in options.items() if value is not None}
        if chosen:
            body["options"] = chosen
        return body

    async def stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        options: Mapping[str, Any],
        user_id: str,
    ) -> AsyncIterator[str | Ending]:
        """The answer's text piece by piece, then one :class:`Ending`; :class:`UpstreamFailure` on error."""
        started = time.perf_counter()
        first: float | None = None
        request = self._http.build_request(
            "POST",
            "/api/chat",
            json=self._body(model, messages, options, True),
            headers={USER_HEADER: user_id},
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("model server %s: %s", self.where, exc)
            raise UpstreamFailure(f"the model server at {self.where} cannot be reached") from None
        try:
            if response.status_code in (401, 403):
                raise UpstreamFailure(f"the model server at {self.where} refused the platform's credential")
            if response.status_code != 200:
                raise UpstreamFailure(_error_of(await response.aread(), response.status_code))
            node = response.headers.get(NODE_HEADER)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    chunk = json.loads(line)
                except ValueError:
                    raise UpstreamFailure(
                        "the model server sent something other than a chat stream"
                    ) from None
                if isinstance(chunk.get("error"), str):
                    raise UpstreamFailure(f"the model failed: {chunk['error']}")
                text = (chunk.get("message") or {}).get("content") or ""
                if text:
                    if first is None:
                        first = time.perf_counter()
                    yield text
                if chunk.get("done"):
                    ended = time.perf_counter()
                    yield Ending(
                        usage={
                            "prompt_tokens": chunk.get("prompt_eval_count") or 0,
                            "completion_tokens": chunk.get("eval_count") or 0,
                            "ttft_ms": round(((first or ended) - started) * 1000, 1),
                            "duration_ms": round((ended - started) * 1000, 1),
                            "node": node,
                        },
                        done_reason=chunk.get("done_reason"),
                    )
                    return
            raise UpstreamFailure("the model server ended the answer before it was done")
        except httpx.HTTPError as exc:
            log.warning("model server %s: %s", self.where, exc)
            raise UpstreamFailure(f"the connection to the model server broke: {type(exc).__name__}") from None
        finally:
            await response.aclose()

    async def complete(
        self, model: str, messages: Sequence[Mapping[str, str]], options: Mapping[str, Any], user_id: str
    ) -> str:
        """The whole answer at once (titles, summaries)."""
        try:
            response = await self._http.post(
                "/api/chat", json=self._body(model, messages, options, False), headers={USER_HEADER: user_id}
            )
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"the model server at {self.where} cannot be reached: {exc}") from None
        if response.status_code != 200:
            raise UpstreamFailure(_error_of(response.content, response.status_code))
        try:
            content = response.json()["message"]["content"]
        except (ValueError, KeyError, TypeError):
            raise UpstreamFailure("the model server answered something other than a chat answer") from None
        return str(content)

    async def aclose(self) -> None:
        await self._http.aclose()
