"""One place that turns the node's exceptions into HTTP errors, in the shapes of :mod:`avocado.api_errors`.

Unexpected exceptions are logged with their traceback and answered with a plain 500.
"""

from __future__ import annotations

from fastapi import FastAPI

from avocado import api_errors
from avocado.api_errors import error_body, error_response
from avocado.names import InvalidModelName
from avocado.node.engine.errors import EngineError, InvalidRequest, ModelLoadError, QueueFull
from avocado.node.options import OptionError
from avocado.node.service import BadRequest, NotFound
from avocado.node.store.errors import BlobNotFound, InvalidModelFile, ModelNotFound, StoreError

__all__ = ["ClientGone", "error_body", "error_response", "install_error_handlers", "status_for"]

# nginx's "client closed request": the status a request log shows for an answer nobody received.
CLIENT_CLOSED = 499


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


def status_for(exc: BaseException) -> tuple[int, str]:
    """HTTP status and user-facing message for an exception raised while serving."""
    if isinstance(exc, NotFound | ModelNotFound):
        return 404, str(exc)
    if isinstance(exc, ClientGone):
        return CLIENT_CLOSED, str(exc)
    if isinstance(exc, BadRequest | OptionError | InvalidModelName | InvalidModelFile | BlobNotFound):
        return 400, str(exc)
    if isinstance(exc, StoreError | InvalidRequest):
        return 400, str(exc)
    if isinstance(exc, QueueFull):
        return 503, str(exc)
    if isinstance(exc, ModelLoadError):
        return 500, str(exc)
    if isinstance(exc, EngineError):
        return 500, str(exc)
    return 500, "internal server error"


def install_error_handlers(app: FastAPI) -> None:
    """The shared handlers (:mod:`avocado.api_errors`) and the node's own exceptions."""
    kinds = (BadRequest, NotFound, StoreError, EngineError, OptionError, InvalidModelName, ClientGone)
    api_errors.install_error_handlers(app, dict.fromkeys(kinds, status_for))
