"""Cloudflare quick tunnels: ``cloudflared tunnel --url http://127.0.0.1:PORT``, no account needed.

cloudflared prints the tunnel's address (``https://<words>.trycloudflare.com``) in a box on its
output once Cloudflare has assigned it; the address changes with every start.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from avocado.tunnel.errors import TunnelUnavailable
from avocado.tunnel.process import ChildProcess, ProcessTunnel

__all__ = ["CloudflaredTunnel"]

_QUICK_URL = re.compile(r"https://(?!api\.)[a-z0-9-]+\.trycloudflare\.com\b")
DOWNLOADS = "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"


class CloudflaredTunnel(ProcessTunnel):
    """One ``cloudflared`` quick tunnel to ``local_url``."""

    name = "cloudflared"
    what = "a trycloudflare.com URL"

    def __init__(
        self,
        local_url: str,
        *,
        binary: str = "cloudflared",
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        open_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(local_url, log_path=log_path, open_timeout=open_timeout, stop_timeout=stop_timeout)
        path = shutil.which(binary)
        if path is None:
            raise TunnelUnavailable(
                f"--tunnel cloudflared needs the cloudflared program on PATH (no {binary!r} found); "
                f"get it from {DOWNLOADS}"
            )
        self.binary = path
        self.extra_args = tuple(extra_args)

    def argv(self) -> list[str]:
        """The cloudflared command line (without the orphan guard)."""
        return [self.binary, "tunnel", "--no-autoupdate", *self.extra_args, "--url", self.local_url]

    def _child_process(self) -> ChildProcess:
        return ChildProcess("cloudflared", self.argv(), log_path=self.log_path)

    def _ready(self) -> Callable[[str], str | None]:
        def quick_url(line: str) -> str | None:
            match = _QUICK_URL.search(line)
            return match[0] if match else None

        return quick_url
