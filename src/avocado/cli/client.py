"""A small HTTP client for the node API, used by the CLI commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from avocado.config import client_base_url

__all__ = ["ClientError", "NodeClient"]


class ClientError(Exception):
    """The node answered with an error, or could not be reached."""


class NodeClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = base_url or client_base_url()
        key = api_key or os.environ.get("AVOCADO_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(30.0, read=None)
        )

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        response.read()
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise ClientError(str(message) or f"HTTP {response.status_code}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise ClientError(f"could not connect to a running node at {self.base_url}: {exc}") from None

    def get(self, path: str) -> Any:
        return self._send("GET", path).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._send("POST", path, json=body)
        return response.json() if response.content else None

    def delete(self, path: str, body: dict[str, Any]) -> None:
        self._send("DELETE", path, json=body)

    def head(self, path: str) -> bool:
        try:
            return self.http.head(path).status_code == 200
        except httpx.TransportError as exc:
            raise ClientError(f"could not connect to a running node at {self.base_url}: {exc}") from None

    def upload(self, path: str, stream: Iterator[bytes]) -> None:
        self._send("POST", path, content=stream)

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line; an ``error`` line raises."""
        try:
            with self.http.stream("POST", path, json=body) as response:
                self._check(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if "error" in item:
                        raise ClientError(str(item["error"]))
                    yield item
        except httpx.TransportError as exc:
            raise ClientError(f"could not connect to a running node at {self.base_url}: {exc}") from None
