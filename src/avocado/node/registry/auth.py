"""Registry tokens: the anonymous bearer-token flow of the OCI distribution protocol.

A registry that wants a token answers 401 with ``WWW-Authenticate: Bearer realm="…",service="…",
scope="…"``; the client asks the realm for a token and sends the request again with it. Ollama's
registry serves public models without one; other OCI registries (ghcr.io, Docker Hub, a company's
own) ask for one even for public pulls, as Ollama's client also handles. The realm is a URL the
registry chose: it is asked under the same :class:`~avocado.node.registry.guard.PullPolicy` as the
registry itself, and its answer is read up to a bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator

import httpx

from avocado.node.registry.errors import RegistryError, remote_message
from avocado.node.registry.guard import GuardedTransport, PullPolicy, read_capped

__all__ = ["RegistryAuth", "parse_bearer_challenge"]

MAX_TOKEN_ANSWER = 1 << 20  # bytes: a token is a few KiB
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
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

    def __init__(self, policy: PullPolicy | None = None) -> None:
        self._token: str | None = None
        self.policy = policy or PullPolicy()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_bearer_challenge(response.headers.get("www-authenticate", ""))
        if challenge is None or not isinstance(request.stream, httpx.ByteStream):
            return  # not a token registry, or a streamed body that cannot go twice: the 401 stands
        self._token = self._fetch_token(challenge)
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def _fetch_token(self, challenge: dict[str, str]) -> str:
        """Ask the realm for a token, through the transfer's policy, reading a bounded answer."""
        realm = challenge["realm"]
        what = f"the registry's token service at {realm}"
        params = {key: challenge[key] for key in ("service", "scope") if challenge.get(key)}
        client = httpx.Client(
            timeout=_TIMEOUT,
            follow_redirects=True,
            headers={"User-Agent": "avocado"},
            transport=GuardedTransport(self.policy),
        )
        try:
            with client, client.stream("GET", realm, params=params) as response:
                if response.status_code >= 400:
                    raise RegistryError(
                        f"the registry asked for a token and {what} refused one: "
                        f"{remote_message(response)} (only anonymous tokens are supported)"
                    )
                body = read_capped(response.iter_bytes(), MAX_TOKEN_ANSWER, what)
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what} could not be reached: {exc or type(exc).__name__}") from None
        return self._token_from(body, realm)

    @staticmethod
    def _token_from(body: bytes, realm: str) -> str:
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the registry's token service at {realm} answered without a token")
        return token
