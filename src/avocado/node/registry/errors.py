"""Errors of registry transfers, and helpers that turn network, registry and disk failures into them.

They derive from the store's errors, so the API maps them already: ``StoreError`` becomes HTTP 400
and ``ModelNotFound`` 404 (see ``avocado.node.api.errors``).
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from avocado.node.store.errors import ModelNotFound, StoreError

__all__ = [
    "RegistryError",
    "RemoteModelNotFound",
    "TransferCancelled",
    "check_response",
    "disk_errors",
    "network_errors",
    "remote_message",
]


_ERROR_BODY = 64 << 10  # bytes of an error answer read for its message


class RegistryError(StoreError):
    """A pull or push failed: the network, the registry's answer, the content or the disk."""


class RemoteModelNotFound(RegistryError, ModelNotFound):
    """The registry has no manifest by that name."""


class TransferCancelled(RegistryError):
    """The client went away; a partial download stays behind so the next pull resumes it."""


def _error_body(response: httpx.Response) -> bytes:
    """The start of an error answer: enough for its message, never a whole (huge) body."""
    try:
        return response.content[:_ERROR_BODY]
    except httpx.ResponseNotRead:  # a streamed answer: read no more than the message needs
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY:
                break
        return bytes(body[:_ERROR_BODY])


def remote_message(response: httpx.Response) -> str:
    """The registry's own words for an error: ``errors[0].message``, ``error``, or the status."""
    try:
        body = json.loads(_error_body(response))
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                return str(errors[0].get("message") or errors[0].get("code"))
            if body.get("error"):
                return str(body["error"])
    except (ValueError, httpx.HTTPError):
        pass
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def check_response(response: httpx.Response, what: str) -> None:
    if response.status_code == 401 or response.status_code == 403:
        raise RegistryError(
            f"{what}: the registry refused access ({remote_message(response)}); only anonymous access "
            "and anonymous tokens are supported"
        )
    if response.status_code >= 400:
        raise RegistryError(f"{what}: {remote_message(response)}")


@contextmanager
def network_errors(what: str, url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException:
        raise RegistryError(f"{what}: the registry at {url} did not answer in time") from None
    except httpx.InvalidURL as exc:  # not an HTTPError: a port that is no number, a control character
        raise RegistryError(f"{what}: {url} is not a URL that can be reached: {exc}") from None
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"{what}: cannot reach the registry at {url}: {exc or type(exc).__name__}"
        ) from None


@contextmanager
def disk_errors(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RegistryError(f"no space left on device while {what}") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise RegistryError(f"permission denied writing to the model store while {what}") from None
        raise RegistryError(f"could not write to the model store while {what}: {exc.strerror}") from None
