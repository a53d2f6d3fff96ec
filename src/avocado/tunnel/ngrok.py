"""ngrok, through its official Python SDK, run in a helper process (:mod:`avocado.tunnel.ngrok_agent`).

The SDK is not loaded into the node itself: with ngrok 1.4.0 its Rust runtime can abort the Python
interpreter it lives in when that interpreter exits (``Fatal Python error: PyGILState_Release``),
which would turn every node shutdown after a failed connect into a crash. A helper process also
makes ngrok a tunnel program like the others: stopped, watched and logged the same way.

The auth token comes from ``NGROK_AUTHTOKEN`` (or ``authtoken=``) and reaches the helper through its
environment, never its command line; it is masked in everything the helper prints.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from avocado.tunnel.errors import TunnelUnavailable
from avocado.tunnel.process import ChildProcess, ProcessTunnel

__all__ = ["READY_PREFIX", "NgrokTunnel"]

READY_PREFIX = "avocado-ngrok: forwarding"  # the helper's line once the endpoint is up: <prefix> URL -> LOCAL

_READY = re.compile(rf"^{re.escape(READY_PREFIX)} (\S+)")
TOKEN_PAGE = "https://dashboard.ngrok.com/get-started/your-authtoken"


class NgrokTunnel(ProcessTunnel):
    """An ngrok HTTP endpoint forwarding to ``local_url``, on a fixed ``domain`` if given."""

    name = "ngrok"
    what = "an ngrok URL"

    def __init__(
        self,
        local_url: str,
        *,
        authtoken: str | None = None,
        domain: str | None = None,
        server_addr: str | None = None,
        log_path: Path | None = None,
        open_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(local_url, log_path=log_path, open_timeout=open_timeout, stop_timeout=stop_timeout)
        token = authtoken or os.environ.get("NGROK_AUTHTOKEN", "")
        if not token.strip():
            raise TunnelUnavailable(
                f"--tunnel ngrok needs an auth token in NGROK_AUTHTOKEN (see {TOKEN_PAGE})"
            )
        if importlib.util.find_spec("ngrok") is None:
            raise TunnelUnavailable("--tunnel ngrok needs the ngrok Python package (pip install ngrok)")
        self._token = token.strip()
        self.domain = domain
        self.server_addr = server_addr

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def argv(self) -> list[str]:
        """The helper's command line; it holds no secret."""
        argv = [sys.executable, "-m", "avocado.tunnel.ngrok_agent", "--forward", self.local_url]
        if self.domain:
            argv += ["--domain", self.domain]
        if self.server_addr:
            argv += ["--server-addr", self.server_addr]
        return argv

    def _child_process(self) -> ChildProcess:
        env = {**os.environ, "NGROK_AUTHTOKEN": self._token}
        return ChildProcess(
            "ngrok", self.argv(), env=env, log_path=self.log_path, secrets=self.secrets(), stdin=True
        )

    def _ready(self) -> Callable[[str], str | None]:
        def forwarding(line: str) -> str | None:
            match = _READY.search(line)
            return match[1] if match else None

        return forwarding
