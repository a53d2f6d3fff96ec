"""Registry tokens: the anonymous bearer-token flow of the OCI distribution protocol.

A registry that wants a token answers 401 with ``WWW-Authenticate: Bearer realm="…",service="…",
scope="…"``; the client asks the realm for a token and sends the request again with it. Ollama's
registry serves public models without one; other OCI registries (ghcr.io, Docker Hub, a company's
own) ask for one even for public pulls, as Ollama's client also handles.
"""

from __future__ import annotations

import re
from collections.abc import Generator

import httpx

from avocado.node.registry.errors import RegistryError, remote_message

__all__ = ["RegistryAuth", "parse_bearer_challenge"]

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of a ``Bearer`` challenge (``realm`` among them), or None for any other."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = {
        name.lower(): quoted.replace('\\"', '"') if quoted else bare
        for name, quoted, bare in _PARAM.findall(rest)
    }
    return params if params.get("realm") else None


class RegistryAuth(httpx.Auth):
    """Fetches a token when a registry asks for one and sends it with every later request.

    One instance per transfer: the token it keeps is for that repository. Sync clients only (the
    transfers run in threads).
    """

    def __init__(self) -> None:
        self._token: str | None = None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_bearer_challenge(response.headers.get("www-authenticate", ""))
        if challenge is None or not isinstance(request.stream, httpx.ByteStream):
            return  # not a token registry, or a streamed body that cannot go twice: the 401 stands
        token_response = yield self._token_request(challenge)
        token_response.read()
        self._token = self._token_from(token_response, challenge["realm"])
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    @staticmethod
    def _token_request(challenge: dict[str, str]) -> httpx.Request:
        params = {key: challenge[key] for key in ("service", "scope") if challenge.get(key)}
        return httpx.Request("GET", challenge["realm"], params=params, headers={"User-Agent": "avocado"})

    @staticmethod
    def _token_from(response: httpx.Response, realm: str) -> str:
        if response.status_code >= 400:
            raise RegistryError(
                f"the registry asked for a token and its token service at {realm} refused one: "
                f"{remote_message(response)} (only anonymous tokens are supported)"
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the registry's token service at {realm} answered without a token")
        return token
