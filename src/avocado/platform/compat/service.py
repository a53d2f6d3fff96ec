"""Forwarding ``/v1`` requests to the upstream (our gateway, a node, a plain Ollama) over HTTP.

The platform calls with its service credential and names the user in ``X-Avocado-User``, so a
gateway attributes the usage to them; the request body goes upstream as the client sent it and the
answer (a stream of server-sent events included) comes back as the upstream gave it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx

from avocado.platform.catalog.service import USER_HEADER
from avocado.platform.compat.errors import OpenAIError
from avocado.redact import redact_url

__all__ = ["Forwarded", "Upstream"]

log = logging.getLogger(__name__)


class Forwarded:
    """An upstream answer still being read: its status, type and body as it arrives."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.media_type = response.headers.get("content-type", "application/json")
        # What a client acts on: when to try again (a busy upstream's 503, a 429)
        self.headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() == "retry-after" or name.lower().startswith("x-ratelimit-")
        }

    async def body(self) -> AsyncIterator[bytes]:
        # Decoded (a compressing upstream's Content-Encoding is not passed on), in the chunks it came in
        try:
            async for chunk in self.response.aiter_bytes():
                yield chunk
        finally:  # the client left, or the answer ended: the upstream request ends too
            await self.response.aclose()

    async def aclose(self) -> None:
        await self.response.aclose()


class Upstream:
    def __init__(self, base_url: str, api_key: str | None, *, read_timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Generations can think for a long while before their first byte: reads may wait long.
        timeout = httpx.Timeout(10.0, read=read_timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def chat(self, body: bytes, user_id: str) -> Forwarded:
        """``POST /v1/chat/completions`` upstream as ``user_id``; the answer is not read yet."""
        request = self._http.build_request(
            "POST",
            "/v1/chat/completions",
            content=body,
            headers={USER_HEADER: user_id, "Content-Type": "application/json"},
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            where = redact_url(self.base_url)
            log.warning("model server %s: %s", where, exc)
            raise OpenAIError(f"the model server at {where} cannot be reached", status=502) from None
        if response.status_code in (401, 403):
            await response.aclose()
            where = redact_url(self.base_url)
            raise OpenAIError(
                f"the model server at {where} refused the platform's credential (upstream_key)", status=502
            )
        return Forwarded(response)

    async def aclose(self) -> None:
        await self._http.aclose()
