"""Settings, the client's node address and durations."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from avocado.config import DEFAULT_PORT, client_base_url, load_settings
from avocado.units import DurationError, parse_duration


def test_precedence_flags_env_file_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "avocado.toml"
    config.write_text('port = 9000\nkeep_alive = "10m"\nnum_ctx = 8192\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("AVOCADO_KEEP_ALIVE", "1h")
    monkeypatch.setenv("AVOCADO_HOME", str(tmp_path / "home"))
    settings = load_settings(config, port=9100, num_ctx=None)
    assert settings.port == 9100  # flag beats file
    assert settings.keep_alive == "1h" and settings.keep_alive_seconds == 3600  # env beats file
    assert settings.num_ctx == 8192 and settings.host == "0.0.0.0"  # file beats default
    assert settings.max_queue == 512  # default
    assert settings.prompt_cache_bytes == 512 << 20
    assert settings.stream_interval_seconds == 0.02
    assert load_settings(stream_interval="0").stream_interval_seconds == 0
    assert settings.models_dir == tmp_path / "home" / "models"


def test_unsafe_or_wrong_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="api_key"):
        load_settings(api_key="short")
    with pytest.raises(ValidationError, match="keep_alive"):
        load_settings(keep_alive="soon")
    with pytest.raises(ValidationError):
        load_settings(port=70000)
    with pytest.raises(ValidationError, match="prompt_cache"):
        load_settings(prompt_cache="lots")
    for interval in ("often", "-1", "2s"):
        with pytest.raises(ValidationError, match="stream_interval"):
            load_settings(stream_interval=interval)
    unknown = tmp_path / "bad.toml"
    unknown.write_text("colour = 'green'\n")
    with pytest.raises(ValidationError, match="colour"):
        load_settings(unknown)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_request_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert defaults.max_predict == 16384 and defaults.max_body_bytes == 32 << 20
    assert defaults.max_upload_bytes == 256 << 30 and defaults.read_timeout_seconds == 30
    assert defaults.upload_expiry_seconds == 15 * 60
    monkeypatch.setenv("AVOCADO_MAX_BODY", "1MiB")
    monkeypatch.setenv("AVOCADO_READ_TIMEOUT", "2s")
    assert load_settings().max_body_bytes == 1 << 20 and load_settings().read_timeout_seconds == 2
    for name, value in [
        ("max_body", "big"),
        ("max_upload", "-"),
        ("read_timeout", "0"),
        ("read_timeout", "-1s"),  # "forever", as keep_alive reads it
        ("upload_expiry", "soon"),
        ("max_predict", 0),
    ]:
        with pytest.raises(ValidationError, match=name):
            load_settings(**{name: value})


def test_api_key_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(api_key="a-very-secret-key")
    assert "a-very-secret-key" not in repr(settings) and "a-very-secret-key" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, f"http://127.0.0.1:{DEFAULT_PORT}"),
        ({"OLLAMA_HOST": "example.com"}, f"http://example.com:{DEFAULT_PORT}"),
        ({"OLLAMA_HOST": ":8080"}, "http://127.0.0.1:8080"),
        ({"OLLAMA_HOST": "0.0.0.0:9"}, "http://127.0.0.1:9"),
        ({"OLLAMA_HOST": "https://node.example"}, "https://node.example:443"),
        ({"OLLAMA_HOST": "x:1", "AVOCADO_HOST": "http://node.internal:5"}, "http://node.internal:5"),
    ],
)
def test_client_base_url(env: dict[str, str], url: str) -> None:
    assert client_base_url(env) == url


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("0", 0.0),
        (0, 0.0),
        (60, 60.0),
        ("-1", math.inf),
        (-1, math.inf),
        ("-5m", math.inf),
        ("30d", 30 * 86400.0),
        ("1w1d12h", 8.5 * 86400),
    ],
)
def test_durations(value: str | int, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "5x", "m", True])
def test_bad_durations(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(value)


def test_origins_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVOCADO_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().origins == ["https://a.example", "https://b.example"]


def test_announce_and_tunnel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVOCADO_AMQP_URL", "amqps://node:s3cret-pass@broker.example:5671/prod")
    settings = load_settings(tunnel="ssh", tunnel_url="https://abc.example/", port=1234, host="0.0.0.0")
    assert settings.amqp_url is not None
    assert settings.amqp_url.get_secret_value().startswith("amqps://node:s3cret-pass@")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert settings.tunnel_url == "https://abc.example"
    assert settings.local_url == "http://127.0.0.1:1234"
    assert load_settings(amqp_url="").amqp_url is None


def test_exposure_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVOCADO_ALLOWED_HOSTS", "lan-box, .corp.example")
    monkeypatch.setenv("AVOCADO_PULL_ALLOW_NETWORKS", "10.0.0.0/8,fd00::/8")
    monkeypatch.setenv("AVOCADO_PULL_ONLY_NETWORKS", "127.0.0.0/8,::1/128")
    settings = load_settings()
    assert settings.allowed_hosts == ["lan-box", ".corp.example"]
    assert settings.pull_allow_networks == ["10.0.0.0/8", "fd00::/8"]
    assert settings.pull_only_networks == ["127.0.0.0/8", "::1/128"]
    assert settings.max_pull_size_bytes == 1 << 40 and not settings.public_without_key
    assert not settings.has_public_url and not load_settings(host="0.0.0.0").has_public_url
    assert (
        load_settings(tunnel="ssh").has_public_url
        and load_settings(tunnel_url="https://n.example").has_public_url
    )
    with pytest.raises(ValidationError, match="'the-lan' is not a network"):
        load_settings(pull_allow_networks="10.0.0.0/8,the-lan")
    with pytest.raises(ValidationError, match="pull_only_networks: 'loopback' is not a network"):
        load_settings(pull_only_networks="loopback")
    with pytest.raises(ValidationError, match="invalid size"):
        load_settings(max_pull_size="lots")


def test_setting_errors_never_echo_the_value() -> None:
    from avocado.cli.main import settings_error

    with pytest.raises(ValidationError) as caught:
        load_settings(amqp_url="http://user:hunter2-secret@broker", tunnel="carrier-pigeon")
    message = settings_error(caught.value)
    assert "amqp_url: Value error, amqp_url must be an amqp:// or amqps:// URL" in message
    assert "tunnel:" in message
    assert "hunter2" not in message


def test_gateway_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from avocado.config import load_gateway_settings

    monkeypatch.setenv("AVOCADO_NODES", "http://a.example:11434,node-key-1 http://b.example:11434")
    settings = load_gateway_settings(home=tmp_path)
    assert settings.nodes == ["http://a.example:11434,node-key-1", "http://b.example:11434"]
    assert settings.port == 4000 and settings.keys_required is False
    assert settings.database == f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    assert "node-key-1" in settings.nodes[0]  # kept for the gateway; never shown (the pool hides it)

    with pytest.raises(ValidationError, match="too weak"):
        load_gateway_settings(master_key="sk-1234")
    with pytest.raises(ValidationError, match="production mode needs AVOCADO_MASTER_KEY"):
        load_gateway_settings(production=True)
    with pytest.raises(ValidationError, match="production mode needs"):
        load_gateway_settings(production=True, master_key="x" * 20)
    strong = load_gateway_settings(production=True, master_key="k" * 40)
    assert strong.keys_required is True
    with pytest.raises(ValidationError, match="URL\\[,api_key\\]"):
        load_gateway_settings(nodes=["ftp://nowhere"])


def test_gateway_key_requirement_and_timeouts(tmp_path: Path) -> None:
    from avocado.config import load_gateway_settings

    master = "m" * 20
    assert load_gateway_settings(home=tmp_path, master_key=master).keys_required is True  # as LiteLLM
    assert load_gateway_settings(home=tmp_path, master_key=master, require_key=False).keys_required is False
    assert load_gateway_settings(home=tmp_path, require_key=True).keys_required is True
    defaults = load_gateway_settings(home=tmp_path)
    assert (defaults.first_byte_timeout_seconds, defaults.stream_idle_timeout_seconds) == (300.0, 60.0)
    custom = load_gateway_settings(home=tmp_path, first_byte_timeout="10m", stream_idle_timeout="1.5s")
    assert (custom.first_byte_timeout_seconds, custom.stream_idle_timeout_seconds) == (600.0, 1.5)
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValidationError, match="timeout"):
            load_gateway_settings(home=tmp_path, stream_idle_timeout=bad)
