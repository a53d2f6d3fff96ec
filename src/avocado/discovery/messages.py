"""The announcement a node publishes on RabbitMQ, and how it goes to and from JSON.

Every node publishes to the durable topic exchange :data:`EXCHANGE` with routing key
:data:`ROUTING_KEY`. The body is one JSON object (schema :data:`SCHEMA`); times are RFC 3339 in UTC.
Consumers ignore fields they do not know, so later versions can add some without a new schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

__all__ = [
    "EXCHANGE",
    "ROUTING_KEY",
    "SCHEMA",
    "Announcement",
    "InvalidAnnouncement",
    "ModelInfo",
    "Status",
    "dump_announcement",
    "parse_announcement",
    "utc_now",
]

EXCHANGE = "service-discovery"
ROUTING_KEY = "inference.url.changed"
SCHEMA: Final = 1

Status = Literal["online", "draining", "offline"]


class InvalidAnnouncement(ValueError):
    """A message body that is not a schema-1 announcement."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class ModelInfo(BaseModel):
    """One model a node serves."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1)
    digest: str
    size: int = Field(ge=0)


class Announcement(BaseModel):
    """Where a node is and what it serves, as of ``timestamp``; newer means a higher ``sequence``."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    schema_version: Literal[1] = Field(default=SCHEMA, alias="schema")
    service_id: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1)
    previous_url: str | None = None
    status: Status
    models: tuple[ModelInfo, ...] = ()
    capabilities: tuple[str, ...] = ()
    version: str
    started_at: AwareDatetime
    timestamp: AwareDatetime
    sequence: int = Field(ge=1)
    ttl_seconds: int = Field(ge=1)

    @field_validator("started_at", "timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        """In UTC and to the millisecond, as on the wire, so a parsed copy compares equal."""
        return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)

    @field_serializer("started_at", "timestamp")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dump_announcement(announcement: Announcement) -> bytes:
    """The message body: compact JSON with the wire names (``schema``, not ``schema_version``)."""
    return announcement.model_dump_json(by_alias=True).encode()


def parse_announcement(body: bytes | str) -> Announcement:
    """Read a message body; raises :class:`InvalidAnnouncement` for anything but a valid schema-1 one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAnnouncement(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidAnnouncement(f"not a JSON object but {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise InvalidAnnouncement(f"unsupported schema {data.get('schema')!r} (this node reads {SCHEMA})")
    try:
        return Announcement.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidAnnouncement(problems) from None
