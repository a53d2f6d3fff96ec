"""Tunnel programs as children: output drained, redacted, logged; stopped for good."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from avocado.tunnel import TunnelStartError
from avocado.tunnel.process import ChildProcess

SECRET = "sk-secret-value-1234"

CHATTY = f"""
import sys, time
print("token={SECRET} and https://user:pw@proxy.example", flush=True)
print("x" * 200000, flush=True)
print("\\x1b[32mready at https://ready.example\\x1b[0m\\r", flush=True)
time.sleep(30)
"""


def test_output_is_redacted_kept_and_logged(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "child.log"
    child = ChildProcess(
        "chatty", [sys.executable, "-c", CHATTY], log_path=log_path, secrets=[SECRET], tail_lines=5
    )

    async def scenario() -> str:
        try:
            return await child.start(
                lambda line: line.split()[-1] if line.startswith("ready at") else None, within=8, what="a URL"
            )
        finally:
            await child.stop()

    assert asyncio.run(scenario()) == "https://ready.example"
    assert not child.alive() and child.pid is None
    log = log_path.read_text()
    assert SECRET not in log and "pw@" not in log and "token=*** and https://user:***@proxy.example" in log
    assert "ready at https://ready.example\n" in log and "\x1b" not in log
    assert all(len(line) <= 65536 for line in child.tail)


def test_a_missing_program_is_a_start_error(tmp_path: Path) -> None:
    child = ChildProcess("ghost", [str(tmp_path / "no-such-program")])
    # Either the exec fails here, or in ``setpriv`` (the orphan guard), which says so and exits.
    with pytest.raises(
        TunnelStartError, match=r"could not start ghost: |ghost exited with status \d+: .*no-such"
    ):
        asyncio.run(child.start(lambda line: None, within=5, what="anything"))
