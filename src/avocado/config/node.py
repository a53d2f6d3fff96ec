"""A node's settings (``avocado serve``): where it listens, its engine and models, the limits of a
request, pulls and pushes, and how it is reached from elsewhere (a tunnel, RabbitMQ announcements)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from avocado.config.shared import (
    AvocadoSettings,
    checked_duration,
    checked_networks,
    checked_size,
    comma_list,
    duration_seconds,
    load,
    positive_duration,
)
from avocado.units import parse_size

__all__ = ["DEFAULT_PORT", "Settings", "load_settings"]

DEFAULT_PORT = 11434


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
        return checked_networks(value, str(info.field_name), "a network like 10.0.0.0/8")

    @field_validator("keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str) -> str:
        checked_duration(value)
        return value

    @field_validator("upload_expiry")
    @classmethod
    def _check_upload_expiry(cls, value: str) -> str:
        return positive_duration(value)

    @field_validator("stream_interval")
    @classmethod
    def _check_stream_interval(cls, value: str) -> str:
        seconds = checked_duration(value)
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
        return checked_size(value)

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
        return duration_seconds(self.keep_alive)

    @property
    def stream_interval_seconds(self) -> float:
        return duration_seconds(self.stream_interval)

    @property
    def upload_expiry_seconds(self) -> float:
        return duration_seconds(self.upload_expiry)

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


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from ``overrides`` (CLI flags; ``None`` means "not given"), env and ``config_file``."""
    return load(Settings, config_file, overrides)
