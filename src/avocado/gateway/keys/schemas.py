"""What the admin API takes and gives: :class:`KeyCreate` in, :class:`KeyPublic` out.

The full key appears once, in :class:`KeyCreated`, right after creation; its hash never leaves the
database. ``expires_in`` reads durations as people type them: ``30d``, ``12h``, ``1d12h``, ``90m``,
``2w`` or plain seconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from avocado.node.api.schemas import WHOLE
from avocado.units import DurationError, parse_duration

if TYPE_CHECKING:
    from avocado.gateway.keys.service import KeyRecord

__all__ = [
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeyPublic",
    "KeyState",
    "UserUsageList",
    "UserUsagePublic",
    "parse_expires_in",
]

KeyState = Literal["active", "expired", "revoked"]

_INT32_MAX = 2**31 - 1  # the columns are 32-bit integers on PostgreSQL
# Strict (true or "5" is not a limit), though 5.0 is 5, as JSON Schema counts integers.
Limit = Annotated[int | None, WHOLE]


def _limit() -> Any:
    return Field(default=None, strict=True, ge=1, le=_INT32_MAX)


_MAX_LIFETIME = timedelta(days=100 * 365)


def parse_expires_in(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"1d12h"``, ``"3600"`` (seconds) as a positive :class:`timedelta`."""
    value = text.strip().lower()
    try:
        # Whole numbers and units only: no sign (a negative duration means "forever" to
        # parse_duration), no fractions, no spaces.
        if not (value.isalnum() and value[0].isdigit()):
            raise DurationError(value)
        seconds = parse_duration(value)
    except DurationError:
        raise ValueError(f"expires_in {text!r} is not a duration like 30d, 12h, 90m or 1d12h") from None
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"expires_in {text!r} is not a duration like 30d, 12h, 90m or 1d12h")
    if seconds <= 0:
        raise ValueError("expires_in must be longer than zero")
    if seconds > _MAX_LIFETIME.total_seconds():
        raise ValueError("expires_in is too long (at most 100 years); omit it for a key that never expires")
    return timedelta(seconds=seconds)


# A character that is no space to Python's str.strip() (which the validators use) nor to JSON Schema's
# \s: Python's spaces include \x1c-\x1f and \x85, JSON Schema's do not.
_NOT_BLANK = r"[^\s\u001c-\u001f\u0085]"
_EXPIRES_IN = r"^\s*([0-9]+|([0-9]+(ns|us|µs|ms|s|m|h|d|w))+)\s*$"


def _document(schema: dict[str, Any]) -> None:
    """What the validators check, in the document: names that are not blank, one expiry at most."""
    properties = schema["properties"]
    properties["name"]["pattern"] = _NOT_BLANK
    properties["models"] = {
        "anyOf": [
            {"type": "array", "items": {"type": "string", "pattern": _NOT_BLANK}, "minItems": 1},
            {"type": "null"},
        ],
        "description": "The models the key may use; leave it out for every model",
    }
    properties["expires_in"] = {
        "anyOf": [{"type": "string", "pattern": _EXPIRES_IN}, {"type": "null"}],
        "description": "A duration from now, more than zero and at most 100 years: 30d, 12h, 90m, 1d12h",
    }
    properties["expires_at"]["description"] = "A time in the future (UTC unless it says otherwise)"
    schema["not"] = {
        "properties": {"expires_in": {"type": "string"}, "expires_at": {"type": "string"}},
        "required": ["expires_in", "expires_at"],
    }


class KeyCreate(BaseModel):
    """A new key: who it is for, which models, which limits, how long it lives."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document)

    name: str = Field(max_length=200)
    models: list[str] | None = None  # None: every model
    rpm: Limit = _limit()
    tpm: Limit = _limit()
    max_parallel: Limit = _limit()
    expires_in: str | None = None
    expires_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be empty")
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.strip() for name in value]
        if not names:
            raise ValueError("models must not be empty; leave it out to allow every model")
        if not all(names):
            raise ValueError("model names must not be empty")
        return list(dict.fromkeys(names))

    @field_validator("expires_in")
    @classmethod
    def _check_expires_in(cls, value: str | None) -> str | None:
        if value is not None:
            parse_expires_in(value)
        return value

    @field_validator("expires_at")
    @classmethod
    def _check_expires_at(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> KeyCreate:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self

    def expiry(self, now: datetime) -> datetime | None:
        """When the key stops working (UTC), counted from ``now`` for ``expires_in``."""
        if self.expires_in is not None:
            return now + parse_expires_in(self.expires_in)
        return self.expires_at


class KeyPublic(BaseModel):
    """A key as lists show it: its prefix, never the key or its hash."""

    id: str
    name: str
    key_prefix: str
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    requests: int
    tokens_in: int
    tokens_out: int
    status: KeyState

    @classmethod
    def from_record(cls, record: KeyRecord, now: datetime) -> KeyPublic:
        return cls(
            id=record.id,
            name=record.name,
            key_prefix=record.key_prefix,
            models=None if record.allowed_models is None else list(record.allowed_models),
            rpm=record.limits.rpm,
            tpm=record.limits.tpm,
            max_parallel=record.limits.max_parallel,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            requests=record.requests,
            tokens_in=record.tokens_in,
            tokens_out=record.tokens_out,
            status=record.state(now),
        )


class KeyCreated(KeyPublic):
    """A key just made: the full ``key`` is here and nowhere else, ever again."""

    key: str

    @classmethod
    def from_new(cls, record: KeyRecord, key: str, now: datetime) -> KeyCreated:
        return cls(**KeyPublic.from_record(record, now).model_dump(), key=key)


class KeyList(BaseModel):
    keys: list[KeyPublic]


class UserUsagePublic(BaseModel):
    """What a key (``master``: the master key) did for a user it named in ``X-Avocado-User``."""

    key_id: str
    user: str
    requests: int
    tokens_in: int
    tokens_out: int
    last_used_at: datetime


class UserUsageList(BaseModel):
    usage: list[UserUsagePublic]
