"""``avocado keys`` against a real admin API: the router on a bare FastAPI app, served by uvicorn."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from avocado.cli.keys import register
from avocado.gateway.keys.router import keys_router
from avocado.gateway.keys.service import KeyService
from tests.db.support import database_url, engine, migrated_url, postgres_database, sessions

__all__ = ["database_url", "engine", "migrated_url", "postgres_database", "sessions"]

MASTER = "master-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gateway(sessions: sessionmaker[Session]) -> Iterator[tuple[str, KeyService]]:
    """The admin API on a free loopback port: its URL and the service behind it."""
    service = KeyService(sessions)
    app = FastAPI()
    app.include_router(keys_router(service, MASTER))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the admin API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", service
    server.should_exit = True
    thread.join(timeout=30)
    service.close()


def keys(gateway_url: str, *args: str, master: str | None = MASTER, home: Path | None = None) -> Result:
    """``avocado keys ARGS`` against ``gateway_url``; ``home`` holds no master key file unless given."""
    app = typer.Typer()
    register(app)
    env = {
        "AVOCADO_GATEWAY_URL": gateway_url,
        "AVOCADO_MASTER_KEY": master,
        "COLUMNS": "200",
        "AVOCADO_HOME": str(home or Path(tempfile.mkdtemp()) / "no-home"),
    }
    result = CliRunner().invoke(app, ["keys", *args], env=env)
    assert MASTER not in result.stdout and MASTER not in result.stderr
    return result


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_create_list_revoke(gateway: tuple[str, KeyService]) -> None:
    url, service = gateway
    made = keys(url, "create", "ci-bot", "--models", "m1,m2", "--rpm", "60", "--tpm", "1000",
                "--max-parallel", "2", "--expires", "30d")  # fmt: skip
    assert made.exit_code == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("avk-") and "\n" not in key  # the key alone on stdout: KEY=$(avocado keys create)
    assert "save it now, it is not shown again" in one_line(made.stderr)
    [record] = service.list()
    assert service.verify(key) == record and record.name == "ci-bot"

    listing = keys(url, "list")
    assert listing.exit_code == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "KEY", "MODELS"]
    assert record.id in row and "ci-bot" in row and f"{key[:8]}…" in row and "m1,m2" in row
    assert "60 rpm, 1000 tpm, 2 parallel" in row and "active" in row and "never" in row
    assert key not in listing.stdout

    as_json = keys(url, "list", "--json")
    [listed] = json.loads(as_json.stdout)
    assert listed["id"] == record.id and "key" not in listed and key not in as_json.stdout

    revoked = keys(url, "revoke", record.id)
    assert revoked.exit_code == 0 and f"revoked key {record.id}" in one_line(revoked.stderr)
    assert "revoked" in keys(url, "list").stdout.splitlines()[1]
    assert service.verify(key) is None


def test_usage_shows_in_the_list(gateway: tuple[str, KeyService]) -> None:
    url, service = gateway
    assert keys(url, "create", "user").exit_code == 0
    [record] = service.list()
    service.record_usage(record.id, 12, 34)
    service.flush()
    row = keys(url, "list").stdout.splitlines()[1]
    assert "1 req, 12/34 tok" in row and "Less than a minute ago" in row and "all" in row


def test_errors_are_one_readable_line(gateway: tuple[str, KeyService]) -> None:
    url, _ = gateway
    cases = [
        (keys(url, "list", master=""), "AVOCADO_MASTER_KEY is not set"),
        (keys(url, "list", master="wrong-master-key-000000"), "Error: invalid master key"),
        (keys(url, "create", "x", "--expires", "soon"), "expires_in 'soon' is not a duration"),
        (keys(url, "create", "x", "--rpm", "0"), "rpm: Input should be greater than or equal to 1"),
        (keys(url, "revoke", "no-such-id"), "API key 'no-such-id' not found"),
        (keys("http://127.0.0.1:9", "list"), "could not connect to the gateway at http://127.0.0.1:9"),
    ]
    for result, message in cases:
        assert result.exit_code == 1 and message in one_line(result.stderr), result.stderr
        assert result.stdout == ""


def test_the_gateway_flag_wins_over_the_environment(gateway: tuple[str, KeyService]) -> None:
    url, _ = gateway
    result = keys("http://127.0.0.1:9", "list", "--gateway", url)
    assert result.exit_code == 0, result.stderr


def test_avocado_ups_master_key_is_read_from_the_home_for_a_loopback_gateway_only(
    gateway: tuple[str, KeyService], tmp_path: Path
) -> None:
    url, _ = gateway
    key_file = tmp_path / "state" / "gateway-master-key"
    key_file.parent.mkdir()
    key_file.write_text(MASTER + "\n")
    key_file.chmod(0o600)
    assert keys(url, "list", master=None, home=tmp_path).exit_code == 0  # AVOCADO_MASTER_KEY unset
    assert "localhost" not in url
    via_name = keys(url.replace("127.0.0.1", "localhost"), "list", master=None, home=tmp_path)
    assert via_name.exit_code == 0, via_name.stderr

    # Never sent to another machine: a gateway elsewhere gets nothing from this home.
    elsewhere = keys("http://192.0.2.1:4000", "list", master=None, home=tmp_path)
    assert elsewhere.exit_code == 1 and "AVOCADO_MASTER_KEY is not set" in one_line(elsewhere.stderr)

    key_file.chmod(0o644)
    loose = keys(url, "list", master=None, home=tmp_path)
    assert loose.exit_code == 1 and "may be read by others" in one_line(loose.stderr)
