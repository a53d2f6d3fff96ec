"""``ollama serve`` run by the node: started on a free loopback port, watched, restarted, stopped.

The daemon runs in its own session, so a Ctrl-C meant for the node does not reach it: the node stops
it in order (SIGTERM, then SIGKILL) when its app shuts down, which uvicorn does on SIGTERM too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time

import httpx

from avocado.backoff import Backoff
from avocado.config import Settings
from avocado.logs import rotate

__all__ = ["OllamaNotFound", "OllamaStartError", "OllamaSupervisor"]

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0  # seconds before the first restart; doubles per crash
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # seconds up after which the backoff starts again from FIRST_BACKOFF
POLL_INTERVAL = 0.2


class OllamaNotFound(Exception):
    """``--engine ollama`` without ``--ollama-url`` and without an ollama binary to run."""


class OllamaStartError(Exception):
    """``ollama serve`` exited or did not answer in time."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OllamaSupervisor:
    """Keeps one ``ollama serve`` answering at :attr:`url` between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        restart_wait: float = 30.0,
    ) -> None:
        binary = shutil.which(settings.ollama_binary)
        if binary is None:
            raise OllamaNotFound(
                "--engine ollama needs --ollama-url or an ollama binary on PATH "
                f"(no {settings.ollama_binary!r} found)"
            )
        self.binary = binary
        self.port = _free_port()
        self.log_path = settings.logs_dir / "ollama.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.restart_wait = restart_wait
        self.restarts = 0
        # No jitter: one daemon per node, nothing to spread out.
        self.backoff = Backoff(FIRST_BACKOFF, MAX_BACKOFF, jitter=0)
        self._answering = asyncio.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._watcher: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The daemon's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    async def start(self) -> None:
        """Start the daemon and return once it answers; raises :class:`OllamaStartError` otherwise."""
        self._spawn()
        try:
            await self._wait_until_healthy()
        except BaseException:
            await self._terminate()
            raise
        self._answering.set()
        self._watcher = asyncio.create_task(self._watch(), name="ollama-supervisor")

    async def answering(self) -> bool:
        """Wait, up to ``restart_wait`` seconds, until a daemon that died is answering again.

        True at once while the daemon runs; False when it is not back in time or is being stopped.
        """
        if self.pid is None:
            self._answering.clear()  # died: the watcher may not have noticed yet
        if self._watcher is None:
            return False
        try:
            await asyncio.wait_for(self._answering.wait(), self.restart_wait)
        except TimeoutError:
            return False
        return self.pid is not None

    async def stop(self) -> None:
        """Stop watching and stop the daemon: SIGTERM, then SIGKILL after ``stop_timeout``."""
        watcher, self._watcher = self._watcher, None
        self._answering.clear()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._terminate()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        host = f"127.0.0.1:{self.port}"
        env = {**os.environ, "OLLAMA_HOST": host, "OLLAMA_ORIGINS": "*"}
        rotate(self.log_path)
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log_file.write(f"--- {stamp} avocado: {self.binary} serve on {host}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(
                [self.binary, "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._started_at = time.monotonic()
        log.info("started ollama serve (pid %d) on %s; its log: %s", self._process.pid, host, self.log_path)

    async def _wait_until_healthy(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.startup_timeout
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while True:
                status = process.poll()
                if status is not None:
                    raise OllamaStartError(
                        f"ollama serve exited with status {status} before answering; see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise OllamaStartError(
                        f"ollama serve did not answer at {self.url} within {self.startup_timeout:g} s; "
                        f"see {self.log_path}"
                    )
                await asyncio.sleep(0.1)

    async def _watch(self) -> None:
        """Restart the daemon whenever it dies, waiting 1 s, 2 s, 4 s ... up to 30 s between tries."""
        while True:
            process = self._process
            assert process is not None
            status = process.poll()
            if status is None:
                if time.monotonic() - self._started_at > STABLE_AFTER:
                    self.backoff.reset()
                await asyncio.sleep(POLL_INTERVAL)
                continue
            self._answering.clear()
            delay = self.backoff.next()
            log.warning(
                "ollama serve (pid %d) exited with status %s; restarting in %g s",
                process.pid,
                status,
                delay,
            )
            await asyncio.sleep(delay)
            self._spawn()
            self.restarts += 1
            try:
                await self._wait_until_healthy()
            except OllamaStartError as exc:
                log.error("%s", exc)
                await self._terminate()  # counts as one more crash
            else:
                self._answering.set()
                log.info("ollama serve is answering again at %s (restart %d)", self.url, self.restarts)

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        self._signal(process, signal.SIGTERM)
        if await self._exited(process, self.stop_timeout):
            return
        log.warning(
            "ollama serve (pid %d) ignored SIGTERM for %g s; killing it", process.pid, self.stop_timeout
        )
        self._signal(process, signal.SIGKILL)
        await self._exited(process, 5.0)

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
        """Signal the daemon's whole process group (its model runners too) while it is alive."""
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(process.pid, signum)
            except PermissionError:
                process.send_signal(signum)

    @staticmethod
    async def _exited(process: subprocess.Popen[bytes], within: float) -> bool:
        deadline = time.monotonic() + within
        while process.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True
