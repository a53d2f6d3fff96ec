"""``avocado platform``'s settings: ``AVOCADO_PLATFORM_*`` for its own, ``AVOCADO_*`` for what it shares.

The platform's host and port would collide with the node's (``AVOCADO_PORT``) and the gateway's, so
its own settings read ``AVOCADO_PLATFORM_HOST``, ``AVOCADO_PLATFORM_PORT``, ... What every service
shares keeps its common name: the home (``AVOCADO_HOME``), the database (``AVOCADO_DATABASE_URL``:
gateway and platform use one), Redis (``AVOCADO_REDIS_URL``), logging, CORS origins and the request
bounds. Precedence as everywhere: flags, environment, the TOML file, defaults.

Signing secrets are generated into the home (``0600``) unless given. Production mode refuses unsafe
defaults: a generated secret, no ``public_url``, or lighter password hashing than OWASP's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from avocado.config import DEFAULT_PORT, AvocadoSettings, checked_networks, comma_list
from avocado.units import DurationError, parse_duration

__all__ = [
    "DEFAULT_PLATFORM_PORT",
    "OWASP_ARGON2",
    "SHARED_FIELDS",
    "PlatformSettings",
    "load_platform_settings",
    "signing_key_file",
]

DEFAULT_PLATFORM_PORT = 8080
# OWASP's Password Storage Cheat Sheet, first argon2id option: 19 MiB, 2 iterations, 1 lane.
OWASP_ARGON2 = {"memory": 19456, "time": 2, "parallelism": 1}
# Settings read from AVOCADO_<NAME> (shared with the node and the gateway); every other one is
# read from AVOCADO_PLATFORM_<NAME>.
SHARED_FIELDS = frozenset(
    {*AvocadoSettings.model_fields, "database_url", "redis_url"}  # home, origins, log_*, max_body, ...
)


def _seconds(value: str, name: str, *, allow_zero: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be a positive duration like 15m, 30d or 2s, got {value!r}")
    return seconds


def _http_url(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


class _PlatformEnv(EnvSettingsSource):
    """``AVOCADO_PLATFORM_<NAME>`` for the platform's own settings, ``AVOCADO_<NAME>`` for shared ones."""

    def __init__(self, settings_cls: type[BaseSettings], *, shared: bool) -> None:
        super().__init__(settings_cls, env_prefix="AVOCADO_" if shared else "AVOCADO_PLATFORM_")
        self.shared = shared

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if (field_name in SHARED_FIELDS) != self.shared:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class PlatformSettings(AvocadoSettings):
    """Everything ``avocado platform`` needs to know to start."""

    model_config = SettingsConfigDict(env_prefix="AVOCADO_PLATFORM_", extra="forbid", toml_file=None)

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PLATFORM_PORT, ge=0, le=65535)
    max_body: str = Field(default="1MiB", description="Largest request body (413 past it)")
    max_upload: str = Field(
        default="64MiB", description="Largest import of conversations (POST /api/v1/conversations/import)"
    )
    threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Threads for database work; more fight the event loop that relays streamed answers "
        "for the interpreter lock (256 streams: p99 per chunk 13-15 ms with 16, 35-200 ms with 40)",
    )
    kept_paths: int = Field(
        default=2000,
        ge=0,
        le=1_000_000,
        description="Conversations whose recent path this process keeps in memory after an answer, so "
        "the next send reads its history there (0: every send reads it from the database)",
    )
    public_url: str | None = Field(
        default=None,
        description="The address users reach (reset links, OIDC redirects, share links); never taken "
        "from the Host header",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxies (addresses or networks) whose X-Forwarded-For and -Proto are believed",
    )
    production: bool = Field(
        default=False,
        description="Refuse to start on unsafe defaults: generated secrets, no public_url, weak hashing",
    )
    signing_key: SecretStr | None = Field(
        default=None, description="Signs access tokens (default: generated into the home, 0600)"
    )
    previous_signing_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys rotated out that still verify tokens they signed (comma-separated)",
    )
    access_ttl: str = Field(default="15m", description="Lifetime of an access token")
    refresh_ttl: str = Field(
        default="30d", description="A session unused this long ends (each refresh starts it anew)"
    )
    reset_ttl: str = Field(default="1h", description="Lifetime of a password reset link")
    revocation_poll: str = Field(
        default="2s",
        description="How often sessions revoked elsewhere (another replica, the CLI) are read back",
    )
    argon2_memory: int = Field(
        default=OWASP_ARGON2["memory"], ge=8, description="Argon2id memory cost in KiB (OWASP: 19456)"
    )
    argon2_time: int = Field(default=OWASP_ARGON2["time"], ge=1, description="Argon2id iterations (OWASP: 2)")
    argon2_parallelism: int = Field(default=OWASP_ARGON2["parallelism"], ge=1, le=64)
    login_free_attempts: int = Field(
        default=5, ge=1, description="Failed sign-ins per account before delays start"
    )
    address_free_attempts: int = Field(
        default=20, ge=1, description="Failed sign-ins per client address before delays start"
    )
    login_max_delay: str = Field(default="15m", description="Longest delay between failed sign-ins")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL, shared with the gateway; default: SQLite in the home"
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis shared by replicas: revocations and sign-in limits"
    )
    broker_url: SecretStr | None = Field(
        default=None,
        description="Background jobs across replicas: amqp:// (RabbitMQ) or redis://; none: in-process",
    )
    broker_queue: str = Field(
        default="avocado.platform.jobs",
        pattern=r"^[A-Za-z0-9._:-]{1,200}$",
        description="The queue (RabbitMQ) or stream (Redis) jobs go through; platforms sharing it share work",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="Mail server, smtp://user:password@host:port (smtps:// for TLS, ?starttls=1)",
    )
    mail_from: str = Field(default="avocado@localhost", description="Sender of the platform's e-mail")
    upstream_url: str = Field(
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        description="The gateway (or any Ollama-compatible endpoint) models are reached through",
    )
    upstream_key: SecretStr | None = Field(
        default=None, description="The platform's service credential for upstream_url"
    )
    gateway_key: SecretStr | None = Field(
        default=None,
        description="Our gateway's master key, for management (its nodes, usage per user); without it, "
        "or in front of a node or a plain Ollama, those pages are hidden. Also the service credential "
        "when upstream_key is not set",
    )
    web_dir: Path | None = Field(
        default=None, description="Built web UI to serve at / (default: the one installed, if any)"
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect provider's issuer URL (its discovery document is read from "
        "ISSUER/.well-known/openid-configuration); none: no single sign-on",
    )
    oidc_client_id: str | None = Field(
        default=None, max_length=500, description="This platform's client id there"
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Its client secret (none: a public client, PKCE only)"
    )
    oidc_name: str = Field(
        default="single sign-on",
        min_length=1,
        max_length=60,
        description='What the sign-in button calls the provider ("Sign in with NAME")',
    )
    oidc_scopes: str = Field(default="openid email profile", description="Scopes asked for (openid is added)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _PlatformEnv(settings_cls, shared=False),
            _PlatformEnv(settings_cls, shared=True),
            TomlConfigSettingsSource(settings_cls),
        )

    @field_validator("trusted_proxies", "previous_signing_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        return checked_networks(value, "trusted_proxies", "an address or a network")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return _http_url(value, "public_url")

    @field_validator("oidc_issuer")
    @classmethod
    def _check_oidc_issuer(cls, value: str | None) -> str | None:
        return _http_url(value, "oidc_issuer")

    @field_validator("oidc_client_id")
    @classmethod
    def _strip_client_id(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value.strip()

    @model_validator(mode="after")
    def _oidc_is_complete(self) -> PlatformSettings:
        if (self.oidc_issuer is None) != (self.oidc_client_id is None):
            raise ValueError("single sign-on needs both oidc_issuer and oidc_client_id (or neither)")
        return self

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, value: str) -> str:
        checked = _http_url(value, "upstream_url")
        if checked is None:
            raise ValueError("upstream_url must be an http(s) URL")
        return checked

    @field_validator("access_ttl", "refresh_ttl", "reset_ttl", "revocation_poll", "login_max_delay")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        _seconds(value, "the duration")
        return value

    @field_validator("signing_key")
    @classmethod
    def _check_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value().strip()) < 32:
            raise ValueError("signing_key must be at least 32 random characters")  # value not echoed
        return SecretStr(value.get_secret_value().strip())

    @field_validator(
        "database_url",
        "redis_url",
        "broker_url",
        "smtp_url",
        "upstream_key",
        "gateway_key",
        "oidc_client_secret",
    )
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None or not value.get_secret_value().strip() else value

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("amqp", "amqps", "redis", "rediss"):
                raise ValueError("broker_url must be amqp(s):// (RabbitMQ) or redis(s)://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("smtp_url must be smtp://host:port or smtps://host:port")
        return value

    @model_validator(mode="after")
    def _production_is_explicit(self) -> PlatformSettings:
        if not self.production:
            return self
        missing = []
        if self.signing_key is None:
            missing.append("AVOCADO_PLATFORM_SIGNING_KEY (at least 32 random characters)")
        if self.public_url is None:
            missing.append("AVOCADO_PLATFORM_PUBLIC_URL (the address users reach)")
        weak = (
            self.argon2_memory < OWASP_ARGON2["memory"]
            or self.argon2_time < OWASP_ARGON2["time"]
            or self.argon2_parallelism < OWASP_ARGON2["parallelism"]
        )
        if weak:
            missing.append("argon2 costs at least OWASP's (memory 19456 KiB, time 2)")
        if self.oidc_issuer is not None and not self.oidc_issuer.startswith("https://"):
            missing.append("an https:// AVOCADO_PLATFORM_OIDC_ISSUER")
        if missing:
            raise ValueError("production mode needs " + "; ".join(missing))
        return self

    @property
    def database(self) -> str:
        """The SQLAlchemy URL: the one given, or the gateway's SQLite file in the home (one database)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'gateway.sqlite3'}"

    @property
    def service_key(self) -> str | None:
        """The credential the platform calls models with: ``upstream_key``, else ``gateway_key``."""
        key = self.upstream_key or self.gateway_key
        return key.get_secret_value() if key is not None else None

    @property
    def access_ttl_seconds(self) -> float:
        return _seconds(self.access_ttl, "access_ttl")

    @property
    def refresh_ttl_seconds(self) -> float:
        return _seconds(self.refresh_ttl, "refresh_ttl")

    @property
    def reset_ttl_seconds(self) -> float:
        return _seconds(self.reset_ttl, "reset_ttl")

    @property
    def revocation_poll_seconds(self) -> float:
        return _seconds(self.revocation_poll, "revocation_poll")

    @property
    def login_max_delay_seconds(self) -> float:
        return _seconds(self.login_max_delay, "login_max_delay")

    @property
    def local_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where users reach the platform: ``public_url``, else its local address."""
        return self.public_url or self.local_url


def signing_key_file(home: Path) -> Path:
    """The access-token signing key generated into ``home`` when none is given (mode 0600)."""
    return home / "state" / "platform-signing-key"


def load_platform_settings(config_file: Path | None = None, **overrides: object) -> PlatformSettings:
    """Settings from ``overrides`` (flags; ``None``: not given), the environment and ``config_file``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if config_file is None:
        return PlatformSettings(**given)  # type: ignore[arg-type]
    if not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    from_file = type(
        "PlatformSettings", (PlatformSettings,), {"model_config": SettingsConfigDict(toml_file=config_file)}
    )
    settings: PlatformSettings = from_file(**given)
    return settings
