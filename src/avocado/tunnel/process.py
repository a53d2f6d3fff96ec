"""A tunnel program (ssh, cloudflared, the ngrok agent) run as a child of the node.

The child runs in its own session, so a Ctrl-C meant for the node does not reach it: the node stops
it in order (SIGTERM, then SIGKILL after a timeout). On Linux it is started through
``setpriv --pdeathsig TERM`` too, so that it also goes when the node dies without stopping it.
Its output (stdout and stderr together) is read as it comes, so the pipe never fills; each line is
redacted, the last ones kept for error messages and all of them appended to an optional log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from avocado.logs import rotate
from avocado.redact import redact
from avocado.tunnel.base import Tunnel
from avocado.tunnel.errors import TunnelStartError, TunnelTimeout

__all__ = ["ChildProcess", "ProcessTunnel", "orphan_guard"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LINE_LIMIT = 65536  # a "line" longer than this is cut, so one endless line cannot eat memory
_ERROR_LINES = 3  # lines of output quoted in an error message


@functools.cache
def orphan_guard() -> tuple[str, ...]:
    """``setpriv --pdeathsig TERM --`` where util-linux's setpriv knows the flag; nothing elsewhere."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv is None:
        return ()
    try:
        helped = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return (setpriv, "--pdeathsig", "TERM", "--") if "--pdeathsig" in helped else ()


class ChildProcess:
    """One run of a tunnel program, from :meth:`start` to :meth:`stop`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        secrets: Sequence[str] = (),
        keep: Callable[[str], bool] | None = None,
        stdin: bool = False,
        tail_lines: int = 30,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.log_path = log_path
        self.secrets = tuple(secrets)
        self.keep = keep
        self.stdin = stdin
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log: IO[str] | None = None
        self._waiters: list[tuple[Callable[[str], Any], asyncio.Future[Any]]] = []

    @property
    def pid(self) -> int | None:
        """The program's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def last_lines(self, count: int = _ERROR_LINES) -> str:
        """The last ``count`` lines of output kept, redacted, on one line."""
        lines = list(self.tail)[-count:]
        return " | ".join(lines)

    async def start(self, ready: Callable[[str], T | None], *, within: float, what: str) -> T:
        """Start the program and return ``ready(line)`` for the first output line it is not None for.

        Raises :class:`TunnelStartError` when the program cannot start or exits first, and
        :class:`TunnelTimeout` when ``within`` seconds pass first. The program is left running
        either way: :meth:`stop` it.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append((ready, future))
        await self._spawn()
        try:
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            raise TunnelTimeout(
                f"{self.name} did not report {what} within {within:g} s{self._quoted()}"
            ) from None
        finally:
            self._waiters = [(r, f) for r, f in self._waiters if f is not future]
            future.cancel()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the program's process group, SIGKILL it after ``grace`` s; wait for its output."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a stopped program handles SIGTERM only once continued
            if not await self._exited(process, grace):
                log.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", self.name, process.pid, grace)
                self._signal(signal.SIGKILL)
                await self._exited(process, 5.0)
        if process.stdin is not None:
            process.stdin.close()
        reader = self._reader
        if reader is not None and not await self._finished(reader, 2.0):
            reader.cancel()  # something else holds the pipe open; do not wait for it
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _spawn(self) -> None:
        argv = [*orphan_guard(), *self.argv]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            raise TunnelStartError(self._redact(f"could not start {self.name}: {exc}")) from None
        self._process = process
        self._open_log(f"started {self.name} (pid {process.pid}): {' '.join(self.argv)}")
        log.info("started %s (pid %d)", self.name, process.pid)
        self._reader = asyncio.create_task(self._read(process), name=f"{self.name}-output")

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        pending = b""
        try:
            while chunk := await process.stdout.read(_LINE_LIMIT):
                *lines, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
                if len(pending) >= _LINE_LIMIT:
                    lines, pending = [*lines, pending], b""
                for raw in lines:
                    self._line(raw)
            self._line(pending)
            self.returncode = await process.wait()
        finally:
            self._ended(process)

    def _line(self, raw: bytes) -> None:
        text = _ANSI.sub("", raw[:_LINE_LIMIT].decode(errors="replace")).strip()
        if not text:
            return
        for ready, future in self._waiters:
            if not future.done():
                found = ready(text)
                if found is not None:
                    future.set_result(found)
        if self.keep is None or self.keep(text):
            clean = self._redact(text)
            self.tail.append(clean)
            self._write_log(clean)

    def exit_message(self) -> str:
        """``<name> exited with status N: <its last lines>``, redacted."""
        status = self.returncode if self.returncode is not None else "unknown"
        return f"{self.name} exited with status {status}{self._quoted()}"

    def _ended(self, process: asyncio.subprocess.Process) -> None:
        status = process.returncode
        error = TunnelStartError(self.exit_message())
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._write_log(f"--- avocado: {self.name} (pid {process.pid}) exited with status {status}")
        if self._log is not None:
            self._log.close()
            self._log = None

    def _quoted(self) -> str:
        lines = self.last_lines()
        return f": {lines}" if lines else " (no output)"

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def _open_log(self, header: str) -> None:
        if self.log_path is None:
            return
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            rotate(self.log_path)
            self._log = self.log_path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            log.warning("cannot write %s's log to %s: %s", self.name, self.log_path, exc)
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write_log(f"--- {stamp} avocado: {self._redact(header)}")

    def _write_log(self, line: str) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log.write(line + "\n")

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(process.pid, signum)
            except PermissionError:
                process.send_signal(signum)

    @staticmethod
    async def _exited(process: asyncio.subprocess.Process, within: float) -> bool:
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            return False
        return True

    @staticmethod
    async def _finished(task: asyncio.Task[None], within: float) -> bool:
        done, _ = await asyncio.wait({task}, timeout=within)
        return bool(done)


class ProcessTunnel(Tunnel):
    """A tunnel kept up by one child program: :meth:`open` starts it, :meth:`close` stops it."""

    what = "a public URL"  # what the program's output is searched for, as error messages say it

    def __init__(
        self,
        local_url: str,
        *,
        log_path: Path | None = None,
        open_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(local_url)
        self.log_path = log_path
        self.open_timeout = open_timeout
        self.stop_timeout = stop_timeout
        self.child: ChildProcess | None = None
        self._last_child: ChildProcess | None = None

    @abstractmethod
    def _child_process(self) -> ChildProcess:
        """The program to run for one :meth:`open`, not started yet."""

    @abstractmethod
    def _ready(self) -> Callable[[str], str | None]:
        """A function of one output line: the public URL once the line says the tunnel is up."""

    @property
    def pid(self) -> int | None:
        """The program's process id while it runs."""
        return self.child.pid if self.child is not None else None

    async def open(self) -> str:
        await self.close()
        child = self.child = self._child_process()
        try:
            url = await child.start(self._ready(), within=self.open_timeout, what=self.what)
        except BaseException:
            await child.stop(self.stop_timeout)
            raise
        self.public_url = url
        return url

    async def close(self) -> None:
        child = self.child
        if child is not None:
            await child.stop(self.stop_timeout)
            self.child, self._last_child = None, child
        self.public_url = None

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def failure(self) -> str:
        child = self.child or self._last_child
        return child.exit_message() if child is not None else super().failure()
