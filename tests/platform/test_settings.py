"""The platform's settings: its own AVOCADO_PLATFORM_* names, shared AVOCADO_* ones, production's rules,
and the signing key generated into the home."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from avocado.platform.build import signing_keys
from avocado.platform.settings import PlatformSettings, load_platform_settings, signing_key_file


def test_own_settings_come_from_avocado_platform_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AVOCADO_PORT", "11434")  # the node's: not the platform's
    monkeypatch.setenv("AVOCADO_HOST", "0.0.0.0")
    monkeypatch.setenv("AVOCADO_PLATFORM_PORT", "9090")
    monkeypatch.setenv("AVOCADO_PLATFORM_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    monkeypatch.setenv("AVOCADO_HOME", str(tmp_path))
    monkeypatch.setenv("AVOCADO_DATABASE_URL", "postgresql://db/avocado")
    monkeypatch.setenv("AVOCADO_PLATFORM_HOME", "/nowhere")  # shared settings have one name only
    settings = PlatformSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 9090)
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert settings.home == tmp_path
    assert settings.database == "postgresql://db/avocado"
    assert load_platform_settings(port=8181).port == 8181  # flags first


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AVOCADO_HOME", str(tmp_path))
    settings = PlatformSettings()
    assert (settings.host, settings.port, settings.public_url) == ("127.0.0.1", 8080, None)
    assert settings.database == f"sqlite:///{tmp_path / 'gateway.sqlite3'}"  # one database with the gateway
    assert (settings.argon2_memory, settings.argon2_time) == (19456, 2)
    assert settings.access_ttl_seconds == 900


def test_bad_values_are_named(tmp_path: Path) -> None:
    for field, value in (
        ("public_url", "chat.example.com"),
        ("trusted_proxies", ["not-a-network"]),
        ("access_ttl", "soon"),
        ("signing_key", "short"),
        ("broker_url", "kafka://x"),
        ("smtp_url", "mail.example.com"),
    ):
        with pytest.raises(ValidationError, match=field):
            PlatformSettings(home=tmp_path, **{field: value})


def test_production_refuses_unsafe_defaults(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        PlatformSettings(home=tmp_path, production=True, argon2_memory=64)
    message = str(refused.value)
    assert "SIGNING_KEY" in message and "PUBLIC_URL" in message and "argon2" in message
    PlatformSettings(home=tmp_path, production=True, signing_key="k" * 40, public_url="https://a.example")


def test_the_signing_key_is_generated_once_into_the_home(tmp_path: Path) -> None:
    settings = PlatformSettings(home=tmp_path)
    keys, created = signing_keys(settings)
    assert created and len(keys) == 1 and len(keys[0]) >= 43
    path = signing_key_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = signing_keys(settings)
    assert again == keys and not created_again
    given = PlatformSettings(home=tmp_path / "other", signing_key="g" * 40, previous_signing_keys="p" * 40)
    assert signing_keys(given) == (["g" * 40, "p" * 40], False)
    assert not signing_key_file(tmp_path / "other").exists()


def test_the_gateway_key_is_read_and_is_the_service_credential_unless_one_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AVOCADO_HOME", str(tmp_path))
    assert PlatformSettings().gateway_key is None and PlatformSettings().service_key is None
    monkeypatch.setenv("AVOCADO_PLATFORM_GATEWAY_KEY", "the-gateway-master-key")
    settings = PlatformSettings()
    assert (
        settings.gateway_key is not None
        and settings.gateway_key.get_secret_value() == "the-gateway-master-key"
    )
    assert settings.service_key == "the-gateway-master-key"
    assert "the-gateway-master-key" not in repr(settings)
    monkeypatch.setenv("AVOCADO_PLATFORM_UPSTREAM_KEY", "avk-a-service-key")
    assert PlatformSettings().service_key == "avk-a-service-key"
    monkeypatch.setenv("AVOCADO_PLATFORM_GATEWAY_KEY", "  ")
    assert PlatformSettings().gateway_key is None
