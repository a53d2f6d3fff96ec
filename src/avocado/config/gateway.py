"""A gateway's settings (``avocado gateway``): its keys (the master key, whether callers need one),
its database and Redis, the nodes it routes to (static, or discovered on RabbitMQ) and how long it
waits for them; the master key ``avocado up`` generates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from avocado.config.shared import AvocadoSettings, duration_seconds, load, positive_duration

__all__ = ["DEFAULT_GATEWAY_PORT", "GatewaySettings", "load_gateway_settings", "master_key_file"]

DEFAULT_GATEWAY_PORT = 4000
# Master keys that appear in examples and tutorials; a gateway refuses them even outside production.
WEAK_MASTER_KEYS = frozenset({"sk-1234", "changeme", "change-me", "password", "secret", "admin", "master"})


class GatewaySettings(AvocadoSettings):
    """Everything ``avocado gateway`` needs to know to start."""

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_GATEWAY_PORT, ge=0, le=65535)
    production: bool = Field(default=False, description="Refuse to start without a strong master key")
    master_key: SecretStr | None = Field(default=None, description="Admin key (AVOCADO_MASTER_KEY)")
    require_key: bool | None = Field(
        default=None,
        description="Require an API key on inference routes (default: with a master key, or in production)",
    )
    open_management: bool = Field(
        default=False,
        description="Let callers without the master key manage models on a gateway that requires no keys",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for GET /metrics besides the master key, when keys are required",
    )
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL (PostgreSQL); default: SQLite in the home directory"
    )
    redis_url: SecretStr | None = Field(default=None, description="Redis for limits shared by replicas")
    amqp_url: SecretStr | None = Field(default=None, description="RabbitMQ to discover nodes on")
    discover_key: SecretStr | None = Field(
        default=None, description="The API key the gateway sends to the nodes it discovers"
    )
    nodes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Static nodes, URL[,api_key], space-separated in AVOCADO_NODES"
    )
    health_interval: float = Field(default=5.0, gt=0, description="Seconds between node health checks")
    breaker_failures: int = Field(default=3, ge=1, description="Consecutive failures that open a breaker")
    breaker_cooldown: float = Field(default=10.0, gt=0, description="Seconds before a half-open probe")
    first_byte_timeout: str = Field(
        default="5m",
        description="How long a node may take to start its answer (a model load) before another is tried",
    )
    stream_idle_timeout: str = Field(
        default="60s",
        description="How long a node may stay silent in the middle of an answer before it is cut",
    )
    key_cache_seconds: float = Field(default=5.0, ge=0, description="How long a verified key is trusted")

    @field_validator("nodes", mode="before")
    @classmethod
    def _split_nodes(cls, value: object) -> object:
        if isinstance(value, str):
            return value.split()
        return value

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, value: list[str]) -> list[str]:
        for entry in value:
            url = entry.split(",", 1)[0]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"a node is URL[,api_key] with an http(s) URL, got {url!r}")
        return value

    @field_validator("master_key")
    @classmethod
    def _check_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        key = value.get_secret_value()
        if key.lower() in WEAK_MASTER_KEYS or len(key) < 16:
            raise ValueError("master_key is too weak: use at least 16 random characters (32 in production)")
        return value

    @field_validator("amqp_url", "redis_url", "database_url")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None or not value.get_secret_value().strip() else value

    @field_validator("discover_key", "metrics_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        """A bearer token goes into a header as it is: printable, no spaces (the value is not echoed)."""
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if not token.isprintable() or " " in token:
            raise ValueError("must be printable, without spaces")
        return SecretStr(token)

    @field_validator("first_byte_timeout", "stream_idle_timeout")
    @classmethod
    def _check_timeout(cls, value: str) -> str:
        return positive_duration(value)

    @model_validator(mode="after")
    def _production_needs_a_master_key(self) -> GatewaySettings:
        if self.production:
            key = self.master_key.get_secret_value() if self.master_key else ""
            if len(key) < 32:
                raise ValueError("production mode needs AVOCADO_MASTER_KEY of at least 32 random characters")
        return self

    @property
    def keys_required(self) -> bool:
        """``require_key`` when set; otherwise keys are required once a master key exists (as LiteLLM
        does), so that limited keys never leave anonymous callers unlimited."""
        if self.require_key is not None:
            return self.require_key
        return self.production or self.master_key is not None

    @property
    def first_byte_timeout_seconds(self) -> float:
        return duration_seconds(self.first_byte_timeout)

    @property
    def stream_idle_timeout_seconds(self) -> float:
        return duration_seconds(self.stream_idle_timeout)

    @property
    def database(self) -> str:
        """The SQLAlchemy URL: the one given, or SQLite in the home directory."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'gateway.sqlite3'}"


def master_key_file(home: Path) -> Path:
    """The master key ``avocado up`` generates for its gateway, in ``home`` (mode 0600)."""
    return home / "state" / "gateway-master-key"


def load_gateway_settings(config_file: Path | None = None, **overrides: object) -> GatewaySettings:
    """Like :func:`~avocado.config.node.load_settings`, for the gateway."""
    return load(GatewaySettings, config_file, overrides)
