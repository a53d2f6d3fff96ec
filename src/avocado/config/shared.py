"""What the settings of every Avocado service share: :class:`AvocadoSettings` (the home directory,
browser origins, logging, request bounds, and where values come from), reading durations, sizes and
comma-separated lists, and loading a settings class from flags, the environment and a TOML file.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Annotated, Literal, TypeVar, cast

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from avocado.units import DurationError, SizeError, parse_duration, parse_size

__all__ = [
    "AvocadoSettings",
    "checked_duration",
    "checked_networks",
    "checked_size",
    "comma_list",
    "duration_seconds",
    "load",
    "positive_duration",
]


def checked_duration(value: str) -> float | None:
    """Seconds in a duration setting; a validation error for one that cannot be read."""
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def duration_seconds(value: str) -> float:
    """Seconds in a duration setting that validation has accepted."""
    seconds = parse_duration(value)
    assert seconds is not None
    return seconds


def positive_duration(value: str) -> str:
    seconds = checked_duration(value)
    if seconds is None or not 0 < seconds < math.inf:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return value


def checked_size(value: str | None) -> str | None:
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


def checked_networks(values: list[str], field: str, expected: str) -> list[str]:
    """``values`` when each is an IP network (an address is a network of one); else a validation
    error naming ``field`` and what was ``expected``."""
    for network in values:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{field}: {network!r} is not {expected}") from None
    return values


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
        checked_size(value)
        return value

    @field_validator("read_timeout")
    @classmethod
    def _check_read_timeout(cls, value: str) -> str:
        return positive_duration(value)

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
        return duration_seconds(self.read_timeout)

    @property
    def max_body_bytes(self) -> int:
        return parse_size(self.max_body)

    @property
    def max_upload_bytes(self) -> int:
        return parse_size(self.max_upload)


S = TypeVar("S", bound=AvocadoSettings)


def load(kind: type[S], config_file: Path | None, overrides: dict[str, object]) -> S:
    given = {key: value for key, value in overrides.items() if value is not None}
    if config_file is None:
        return kind(**given)  # type: ignore[arg-type]
    if not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    from_file = type(kind.__name__, (kind,), {"model_config": SettingsConfigDict(toml_file=config_file)})
    return cast(S, from_file(**given))
