"""Typed settings: ``AVOCADO_*`` environment variables, an optional TOML file, then defaults.

Precedence, highest first: values passed in code (CLI flags), environment, the TOML file, defaults.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from typing import Annotated, Literal, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from avocado.units import DurationError, SizeError, parse_duration, parse_size

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_PORT",
    "AvocadoSettings",
    "GatewaySettings",
    "Settings",
    "client_base_url",
    "gateway_base_url",
    "load_gateway_settings",
    "load_settings",
    "master_key_file",
]

DEFAULT_PORT = 11434
DEFAULT_GATEWAY_PORT = 4000
# Master keys that appear in examples and tutorials; a gateway refuses them even outside production.
WEAK_MASTER_KEYS = frozenset({"sk-1234", "changeme", "change-me", "password", "secret", "admin", "master"})


def _duration(value: str) -> float | None:
    """Seconds in a duration setting; a validation error for one that cannot be read."""
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _seconds(value: str) -> float:
    """Seconds in a duration setting that validation has accepted."""
    seconds = parse_duration(value)
    assert seconds is not None
    return seconds


def _positive_duration(value: str) -> str:
    seconds = _duration(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return value


def _size(value: str | None) -> str | None:
    """A size setting (``"32MiB"``) as given; a validation error for one that cannot be read."""
    if value is not None:
        try:
            parse_size(value)
        except SizeError as exc:
            raise ValueError(str(exc)) from None
    return value


def comma_list(value: object) -> object:
    """A comma-separated environment value as a list (other values pass through to validation)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class AvocadoSettings(BaseSettings):
    """What every Avocado service's settings share: the home directory, browser origins, logging,
    and where values come from (flags, then ``AVOCADO_*``, then a TOML file, then defaults)."""

    model_config = SettingsConfigDict(env_prefix="AVOCADO_", extra="forbid", toml_file=None)

    home: Path = Field(default_factory=lambda: Path.home() / ".avocado", description="Data directory")
    origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed besides localhost (like OLLAMA_ORIGINS)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    max_body: str = Field(
        default="32MiB", description="Largest request body, model uploads aside (413 past it)"
    )
    max_upload: str = Field(
        default="256GiB", description="Largest model upload (POST /api/blobs, a /v2 upload session)"
    )
    read_timeout: str = Field(
        default="30s",
        description="Time for a request's line and headers, and for its body on top of 1 KiB/s",
    )

    @field_validator("max_body", "max_upload")
    @classmethod
    def _check_body_size(cls, value: str) -> str:
        _size(value)
        return value

    @field_validator("read_timeout")
    @classmethod
    def _check_read_timeout(cls, value: str) -> str:
        return _positive_duration(value)

    @field_validator("origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """``AVOCADO_ORIGINS=https://a.example,https://b.example``, as Ollama spells OLLAMA_ORIGINS."""
        return comma_list(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def read_timeout_seconds(self) -> float:
        return _seconds(self.read_timeout)

    @property
    def max_body_bytes(self) -> int:
        return parse_size(self.max_body)

    @property
    def max_upload_bytes(self) -> int:
        return parse_size(self.max_upload)


S = TypeVar("S", bound=AvocadoSettings)


class Settings(AvocadoSettings):
    """Everything a node needs to know to start."""

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the node answers to besides localhost, its addresses and its public URL",
    )
    api_key: SecretStr | None = Field(default=None, description="Require 'Authorization: Bearer <key>'")
    public_without_key: bool = Field(
        default=False, description="Serve a public URL (tunnel, tunnel_url) without an API key: open to all"
    )
    default_model: str = "smollm2:135m"
    register_bundled_models: bool = True
    keep_alive: str = "5m"
    parallel: int = Field(default=4, ge=1, le=64, description="Requests decoded together per model")
    max_queue: int = Field(default=512, ge=1, description="Requests waiting per model before 503")
    max_loaded_models: int = Field(default=3, ge=1, le=64, description="Models kept in memory at once")
    max_memory: str | None = Field(default=None, description='Memory for loaded models ("8GB"); 80% of RAM')
    prompt_cache: str = Field(
        default="512MiB", description="Host memory per model for prompts that left their slot (0: none)"
    )
    stream_interval: str = Field(
        default="20ms",
        description="A fast stream's tokens go out at most this often, one chunk each (0: each at once)",
    )
    upload_expiry: str = Field(
        default="15m", description="An unfinished /v2 upload session idle this long is dropped with its data"
    )
    num_ctx: int = Field(default=4096, ge=256, le=1 << 20)
    max_predict: int = Field(
        default=16384,
        ge=1,
        le=1 << 20,
        description="Most tokens one request may generate, whatever num_predict or max_tokens ask",
    )
    num_thread: int | None = Field(default=None, ge=1, le=1024)
    num_batch: int = Field(default=512, ge=1, le=1 << 16)
    num_gpu: int | None = Field(
        default=None,
        ge=-1,
        le=1 << 16,
        description="Layers to offload to the GPU(s); none or -1: as many as fit, 0: CPU only",
    )
    main_gpu: int | None = Field(
        default=None, ge=0, le=1023, description="GPU a model that fits on one goes to; none: the freest"
    )
    tensor_split: Annotated[list[float], NoDecode] = Field(
        default_factory=list,
        description='Fixed shares of the layers per GPU, e.g. "3,1"; none: by free memory',
    )
    max_pull_size: str = Field(
        default="1TiB", description="The most a pull may download (a model's blobs together, or one file)"
    )
    pull_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Loopback or private networks pulls may reach while the node has a public URL",
    )
    pull_only_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="When set, the only networks pulls and pushes may reach (public addresses included)",
    )
    engine: Literal["embedded", "ollama"] = Field(
        default="embedded", description="embedded: llama.cpp in this process; ollama: proxy an Ollama daemon"
    )
    ollama_url: str | None = Field(
        default=None, description="Ollama daemon to put the node in front of; none: start one (engine=ollama)"
    )
    ollama_binary: str = Field(
        default="ollama", description="Ollama executable started when ollama_url is unset"
    )
    tunnel: Literal["none", "ngrok", "ssh", "cloudflared"] = Field(
        default="none", description="How the node is reached from elsewhere: a public tunnel, or its own URL"
    )
    tunnel_url: str | None = Field(
        default=None, description="Public URL of the node (ssh: when the server does not print one)"
    )
    tunnel_domain: str | None = Field(default=None, description="Fixed ngrok domain")
    tunnel_ssh: str = Field(
        default="nokey@localhost.run", description="SSH server for --tunnel ssh: user@host[:port]"
    )
    tunnel_ssh_key: Path | None = Field(default=None, description="Identity file for --tunnel ssh")
    tunnel_check_interval: float = Field(
        default=30.0, gt=0, description="Seconds between end-to-end checks of the public URL"
    )
    amqp_url: SecretStr | None = Field(
        default=None, description="RabbitMQ to announce the node on (amqp:// or amqps://)"
    )
    announce_interval: float = Field(default=30.0, gt=0, description="Seconds between re-announcements")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_allowed_hosts(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("tensor_split", mode="before")
    @classmethod
    def _split_tensor_split(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("tensor_split")
    @classmethod
    def _check_tensor_split(cls, value: list[float]) -> list[float]:
        if value and (min(value) < 0 or sum(value) <= 0):
            raise ValueError("tensor_split: shares must be 0 or more, and not all 0")
        return value

    @field_validator("pull_allow_networks", "pull_only_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("pull_allow_networks", "pull_only_networks")
    @classmethod
    def _check_networks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{info.field_name}: {network!r} is not a network like 10.0.0.0/8") from None
        return value

    @field_validator("keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str) -> str:
        _duration(value)
        return value

    @field_validator("upload_expiry")
    @classmethod
    def _check_upload_expiry(cls, value: str) -> str:
        return _positive_duration(value)

    @field_validator("stream_interval")
    @classmethod
    def _check_stream_interval(cls, value: str) -> str:
        seconds = _duration(value)
        if seconds is None or not 0 <= seconds <= 1:
            raise ValueError(f"stream_interval must be between 0 and 1s, got {value!r}")
        return value

    @field_validator("ollama_url")
    @classmethod
    def _check_ollama_url(cls, value: str | None) -> str | None:
        """``host:port`` or ``http(s)://host[:port][/prefix]``; empty means "not given"."""
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = f"http://{value}"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ollama_url must be an http(s) URL, got {value!r}")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            # The value is not echoed: it holds a password.
            raise ValueError("amqp_url must be an amqp:// or amqps:// URL")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("tunnel_url")
    @classmethod
    def _check_tunnel_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"tunnel_url must be an http(s) URL, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("max_memory", "prompt_cache", "max_pull_size")
    @classmethod
    def _check_size(cls, value: str | None) -> str | None:
        return _size(value)

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("api_key must be at least 8 characters")
        return value

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def has_public_url(self) -> bool:
        """Whether the node is meant to be reached from elsewhere: a tunnel, or a public URL given."""
        return self.tunnel != "none" or self.tunnel_url is not None

    @property
    def local_url(self) -> str:
        """Where this machine reaches the node (a wildcard address means loopback will do)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def keep_alive_seconds(self) -> float:
        return _seconds(self.keep_alive)

    @property
    def stream_interval_seconds(self) -> float:
        return _seconds(self.stream_interval)

    @property
    def upload_expiry_seconds(self) -> float:
        return _seconds(self.upload_expiry)

    @property
    def memory_budget(self) -> int:
        if self.max_memory is not None:
            return parse_size(self.max_memory)
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)

    @property
    def prompt_cache_bytes(self) -> int:
        return parse_size(self.prompt_cache)

    @property
    def max_pull_size_bytes(self) -> int:
        return parse_size(self.max_pull_size)

    @property
    def threads(self) -> int:
        return self.num_thread or max(1, os.cpu_count() or 1)


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
        return _positive_duration(value)

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
        return _seconds(self.first_byte_timeout)

    @property
    def stream_idle_timeout_seconds(self) -> float:
        return _seconds(self.stream_idle_timeout)

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
    """Like :func:`load_settings`, for the gateway."""
    return _load(GatewaySettings, config_file, overrides)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from ``overrides`` (CLI flags; ``None`` means "not given"), env and ``config_file``."""
    return _load(Settings, config_file, overrides)


def _load(kind: type[S], config_file: Path | None, overrides: dict[str, object]) -> S:
    given = {key: value for key, value in overrides.items() if value is not None}
    if config_file is None:
        return kind(**given)  # type: ignore[arg-type]
    if not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    from_file = type(kind.__name__, (kind,), {"model_config": SettingsConfigDict(toml_file=config_file)})
    return cast(S, from_file(**given))


def gateway_base_url(env: dict[str, str] | None = None) -> str:
    """Where admin commands find the gateway: ``AVOCADO_GATEWAY_URL``, else where clients find a node
    (:func:`client_base_url`: 127.0.0.1:11434 by default, the gateway of ``avocado up``)."""
    env = dict(os.environ) if env is None else env
    given = env.get("AVOCADO_GATEWAY_URL", "").strip().rstrip("/")
    return given or client_base_url(env)


def client_base_url(env: dict[str, str] | None = None) -> str:
    """Where client commands find a node: ``AVOCADO_HOST``, then ``OLLAMA_HOST``, then the default.

    Accepts Ollama's forms: ``host``, ``host:port``, ``:port``, ``http(s)://host[:port]``.
    """
    env = dict(os.environ) if env is None else env
    raw = (env.get("AVOCADO_HOST") or env.get("OLLAMA_HOST") or "").strip().rstrip("/")
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    scheme = parts.scheme or "http"
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (
        443 if scheme == "https" and parts.netloc and ":" not in parts.netloc else DEFAULT_PORT
    )
    return f"{scheme}://{host}:{port}{parts.path}"
