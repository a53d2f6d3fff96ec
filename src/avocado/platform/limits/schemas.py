"""The limits API's JSON: the limits of a role or a user, an override, and what a user has used.

Every limit is a number or ``null`` (no limit); ``models`` is a list of glob patterns (``smollm2:*``,
``*``) naming the models a user may see, ``null`` for all of them and ``[]`` for none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ROLES",
    "LimitValues",
    "LimitsUsage",
    "MyLimits",
    "Pattern",
    "RoleDefaults",
    "RoleDefaultsUpdate",
    "UserLimitsPublic",
]

ROLES = ("admin", "user")
MAX_PATTERNS = 100

Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/*?\[\]!@+-]+$")
]


class LimitValues(BaseModel):
    """One set of limits; as an override, only the fields given are set (``null`` included: no
    limit for this user whatever their role's is), the rest come from the role."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrent_requests: int | None = Field(default=None, ge=1, le=10_000)
    tokens_per_day: int | None = Field(default=None, ge=1, le=10**12)
    models: list[Pattern] | None = Field(
        default=None, max_length=MAX_PATTERNS, description="Glob patterns of visible models; null: all"
    )


class RoleDefaults(BaseModel):
    """The limits of each role, where a user's own override says nothing."""

    model_config = ConfigDict(extra="forbid")

    admin: LimitValues = Field(default_factory=LimitValues)
    user: LimitValues = Field(default_factory=LimitValues)


class RoleDefaultsUpdate(BaseModel):
    """``PUT /api/v1/admin/limits``: each role given is replaced whole (a field left out is no
    limit); a role left out keeps its limits."""

    model_config = ConfigDict(extra="forbid")

    admin: LimitValues | None = None
    user: LimitValues | None = None


class UserLimitsPublic(BaseModel):
    user_id: str
    role: Literal["admin", "user"]
    override: dict[str, object] = Field(description="The fields set for this user only")
    defaults: LimitValues = Field(description="Their role's limits")
    effective: LimitValues = Field(description="What applies: the override's fields, else the role's")
    updated_at: datetime | None = None


class LimitsUsage(BaseModel):
    requests_last_minute: int
    concurrent_requests: int
    tokens_today: int
    tokens_reset_at: datetime = Field(description="When tokens_today starts again from 0 (midnight UTC)")


class MyLimits(BaseModel):
    limits: LimitValues
    usage: LimitsUsage
