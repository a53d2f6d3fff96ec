"""ngrok through its SDK in a helper process; the ngrok service itself cannot be reached here.

The helper is pointed at loopback addresses (``server_addr``) that refuse or never answer, so these
tests behave the same with or without a network and never talk to ngrok's servers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from avocado.tunnel import NgrokTunnel, TunnelStartError, TunnelSupervisor, TunnelTimeout, TunnelUnavailable
from avocado.tunnel.ngrok_agent import _say
from tests.tunnel.support import free_port, until, wait_gone

LOCAL = "http://127.0.0.1:11434"
TOKEN = "2fakeTokenForTests_abcdefGHIJKLmnopQRSTuvwxYZ012345"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    with pytest.raises(TunnelUnavailable, match="needs an auth token in NGROK_AUTHTOKEN"):
        NgrokTunnel(LOCAL)
    monkeypatch.setenv("NGROK_AUTHTOKEN", "  ")
    with pytest.raises(TunnelUnavailable, match="NGROK_AUTHTOKEN"):
        NgrokTunnel(LOCAL)


def test_no_connection_is_a_readable_error_without_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    tunnel = NgrokTunnel(LOCAL, server_addr=f"127.0.0.1:{free_port()}", log_path=tmp_path / "ngrok.log")
    assert TOKEN not in " ".join(tunnel.argv()) and TOKEN not in repr(tunnel)
    with pytest.raises(TunnelStartError) as error:
        asyncio.run(tunnel.open())
    message = str(error.value)
    assert message.startswith("ngrok exited with status 1: avocado-ngrok: cannot connect to ngrok: "), message
    assert "failed to connect session" in message and TOKEN not in message
    log = (tmp_path / "ngrok.log").read_text()
    assert "cannot connect to ngrok" in log and TOKEN not in log
    assert tunnel.pid is None


def test_a_silent_server_times_out(silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    tunnel = NgrokTunnel(LOCAL, server_addr=silent_server, open_timeout=1.5)

    async def scenario() -> int:
        opening = asyncio.create_task(tunnel.open())
        await until(lambda: tunnel.pid is not None, what="the ngrok helper to start")
        pid = tunnel.pid
        assert pid is not None
        with pytest.raises(TunnelTimeout, match=r"ngrok did not report an ngrok URL within 1\.5 s") as error:
            await opening
        assert TOKEN not in str(error.value)
        return pid

    assert wait_gone(asyncio.run(scenario()))


def test_supervisor_retries_with_backoff_and_keeps_the_token_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    supervisor = TunnelSupervisor(
        NgrokTunnel(LOCAL, server_addr=f"127.0.0.1:{free_port()}"),
        first_backoff=0.05,
        max_backoff=0.1,
        jitter=0,
    )

    async def scenario() -> None:
        await supervisor.start()
        try:
            await until(lambda: supervisor.restarts >= 2, what="two retries")
        finally:
            await supervisor.close()

    asyncio.run(scenario())
    status = supervisor.status()
    assert status.state == "stopped" and status.provider == "ngrok" and status.public_url is None
    assert status.last_error is not None and "cannot connect to ngrok" in status.last_error
    assert TOKEN not in json.dumps(status.as_dict())
    assert list(supervisor.backoff.history)[:2] == [0.05, 0.1]


def test_the_helper_masks_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    _say(f"rejected {TOKEN}", TOKEN)
    assert capsys.readouterr().out == "avocado-ngrok: rejected ***\n"
