"""``POST /api/avocado/credentials``: replace the node's API key and broker credentials while it runs.

The body holds any of ``api_key`` (the new key), ``previous_key_valid_for`` (how long the keys it
replaces keep working: a duration such as ``"10m"``, the default, up to ``"24h"``; ``"0"`` refuses
them at once) and ``amqp_url`` (the broker to announce on from now on, new credentials in it). The
route is behind the API key like every other, and a node without one refuses it: there is nothing
to rotate, and nobody to trust with its broker. The new broker URL is tried before anything changes;
when it does not work, nothing changes. The answer says what changed and never holds a secret.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from avocado.api_errors import error_response
from avocado.config import Settings
from avocado.discovery import BrokerError, redact_url
from avocado.node.access import key_file
from avocado.node.credentials import MAX_OVERLAP, ApiKeys
from avocado.node.presence import Presence
from avocado.units import DurationError, parse_duration

__all__ = ["DEFAULT_OVERLAP", "CredentialsChange", "change"]

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = "10m"


class CredentialsChange(BaseModel):
    """What ``POST /api/avocado/credentials`` may replace; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    previous_key_valid_for: str | float = DEFAULT_OVERLAP
    amqp_url: SecretStr | None = None

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        key = value.get_secret_value() if value is not None else None
        if key is not None and (len(key) < 8 or key.strip() != key):
            raise ValueError("a key has at least 8 characters and no surrounding spaces")
        return value

    @field_validator("previous_key_valid_for")
    @classmethod
    def _check_overlap(cls, value: str | float) -> str | float:
        overlap_seconds(value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("an amqp:// or amqps:// URL")  # the value is not echoed: it holds a password
        return SecretStr(value.get_secret_value().strip())


def overlap_seconds(value: str | float) -> float:
    """Seconds in ``previous_key_valid_for``; ``ValueError`` for what is not a duration in range."""
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds is None or not 0 <= seconds <= MAX_OVERLAP:
        raise ValueError(f"a duration from 0 to {MAX_OVERLAP / 3600:g}h")
    return seconds


async def change(request: Request) -> JSONResponse:
    path = request.url.path
    keys: ApiKeys | None = request.app.state.api_keys
    if keys is None:
        message = "this node requires no API key, so its credentials cannot be changed over HTTP"
        return error_response(path, 403, f"{message}: start it with --api-key (or AVOCADO_API_KEY)")
    try:
        body = CredentialsChange.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(path, 400, _describe(exc))
    if body.api_key is None and body.amqp_url is None:
        return error_response(path, 400, "nothing to change: give api_key, amqp_url or both")
    if body.api_key is not None and keys.accepts(body.api_key.get_secret_value().encode()):
        return error_response(path, 400, "api_key: the new key must be one the node does not accept yet")
    answer: dict[str, Any] = {}
    if body.amqp_url is not None:  # first: the one change that can still fail
        presence: Presence = request.app.state.presence
        if presence.announcer is None:
            return error_response(path, 409, "this node does not announce (start it with --announce)")
        url = body.amqp_url.get_secret_value()
        try:
            await presence.use_broker(url)
        except BrokerError as exc:
            return error_response(path, 400 if exc.refused else 502, f"nothing changed: {exc}")
        answer["amqp_url"] = {"changed": True, "broker": redact_url(url), "stored": False}
    if body.api_key is not None:
        answer["api_key"] = await _rotate(request, keys, body.api_key.get_secret_value(), body)
    kept = [name for name, what in answer.items() if not what["stored"]]
    if kept:
        answer["note"] = (
            f"{' and '.join(kept)} came from the node's settings, which still hold the old value: "
            "change them too (flag, AVOCADO_* variable or config file) before the node starts again"
        )
    return JSONResponse(answer)


async def _rotate(request: Request, keys: ApiKeys, key: str, body: CredentialsChange) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    overlap = overlap_seconds(body.previous_key_valid_for)
    replaced = keys.current
    keys.replace(key, overlap)
    until = (datetime.now(UTC) + timedelta(seconds=overlap)).isoformat().replace("+00:00", "Z")
    log.info("API key replaced; the keys it replaced are accepted until %s", until)
    stored = await asyncio.to_thread(keys.store, key_file(settings), replaced)
    return {"changed": True, "previous_keys_valid_until": until, "stored": stored}


def _describe(exc: ValidationError) -> str:
    """What was wrong, without the values (they hold secrets)."""
    problems = []
    for error in exc.errors():
        if error["type"] == "json_invalid":
            return "invalid JSON in request body"
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(problems)
