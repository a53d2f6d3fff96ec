"""Keep a tunnel up: open it, check it end to end, and reopen it with backoff when it fails.

Every ``check_interval`` seconds the supervisor asks for ``GET /`` at the public URL (the node answers
"Ollama is running") and expects a 2xx. After ``failures_before_restart`` failed checks in a row, or
as soon as the tunnel's program exits, it closes the tunnel and opens it again after 1 s, 2 s, 4 s
... (up to ``max_backoff``, with jitter); a passing check starts the delays over. When the node
itself does not answer at ``local_url`` either, failed checks are not held against the tunnel.
Each new public URL, the first one included, goes to ``on_url_change(new_url, previous_url)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from avocado.backoff import Backoff
from avocado.redact import redact
from avocado.tunnel.base import Tunnel
from avocado.tunnel.errors import TunnelError, TunnelTimeout

__all__ = ["TunnelState", "TunnelStatus", "TunnelSupervisor", "UrlCallback"]

log = logging.getLogger(__name__)

TunnelState = Literal["starting", "online", "reconnecting", "stopped"]
UrlCallback = Callable[[str, str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TunnelStatus:
    """What ``avocado status`` or an API can show about the tunnel; holds no secret."""

    provider: str
    state: TunnelState
    public_url: str | None
    last_check: float | None  # time.time() of the last end-to-end check
    last_check_ok: bool | None
    last_error: str | None
    restarts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TunnelSupervisor:
    """Keeps one tunnel up between :meth:`start` and :meth:`close`.

    ``tunnel`` is a :class:`Tunnel`, opened again after each failure, or a function making a new
    one per try (called once right away, so that a :class:`TunnelUnavailable` surfaces here).
    """

    def __init__(
        self,
        tunnel: Tunnel | Callable[[], Tunnel],
        *,
        local_url: str | None = None,
        on_url_change: UrlCallback | None = None,
        check_interval: float | None = 30.0,
        check_timeout: float = 10.0,
        failures_before_restart: int = 2,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        if failures_before_restart < 1:
            raise ValueError("failures_before_restart must be at least 1")
        self._factory = None if isinstance(tunnel, Tunnel) else tunnel
        self.tunnel: Tunnel = tunnel if isinstance(tunnel, Tunnel) else tunnel()
        self.provider = self.tunnel.name
        self.local_url = local_url
        self.on_url_change = on_url_change
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.failures_before_restart = failures_before_restart
        self.poll_interval = poll_interval
        self.backoff = Backoff(first_backoff, max_backoff, jitter, rng)
        self.restarts = 0
        self._state: TunnelState = "starting"
        self._public_url: str | None = None
        self._announced: str | None = None
        self._last_check: float | None = None
        self._last_check_ok: bool | None = None
        self._last_error: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def status(self) -> TunnelStatus:
        url = self._public_url
        return TunnelStatus(
            provider=self.provider,
            state=self._state,
            public_url=self._redact(url) if url is not None else None,
            last_check=self._last_check,
            last_check_ok=self._last_check_ok,
            last_error=self._last_error,
            restarts=self.restarts,
        )

    @property
    def public_url(self) -> str | None:
        """The URL the tunnel answers at while online (unredacted: for announcing, not for logs)."""
        return self._public_url

    async def start(self) -> None:
        """Start keeping the tunnel up in the background; returns at once (see :meth:`wait_online`)."""
        if self._task is None and self._state != "stopped":
            self._task = asyncio.create_task(self._run(), name=f"tunnel-{self.provider}")

    async def wait_online(self, within: float | None = None) -> str:
        """The public URL once the tunnel is online; :class:`TunnelTimeout` after ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while self._state != "online" or self._public_url is None:
                    if self._state == "stopped":
                        raise TunnelError(f"the {self.provider} tunnel was stopped")
                    changed = self._changed
                    await changed.wait()
                return self._public_url
        except TimeoutError:
            why = f"; last error: {self._last_error}" if self._last_error else ""
            raise TunnelTimeout(
                f"the {self.provider} tunnel was not online within {within:g} s{why}"
            ) from None

    async def close(self) -> None:
        """Stop supervising and close the tunnel (its program stopped: SIGTERM, then SIGKILL)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_tunnel()
        self._public_url = None
        self._set_state("stopped")

    async def _run(self) -> None:
        first = True
        while True:
            if not first:
                self.restarts += 1
            self._set_state("starting" if first else "reconnecting")
            first = False
            try:
                reason = await self._attempt()
            except Exception as exc:  # a bug must not end the supervision
                log.exception("%s tunnel: unexpected error", self.provider)
                reason = f"unexpected error: {type(exc).__name__}: {exc}"
            self._public_url = None
            self._set_state("reconnecting")
            await self._close_tunnel()
            reason = reason or self.tunnel.failure()
            self._set_error(reason)
            delay = self.backoff.next()
            log.warning("%s tunnel: %s; reopening in %.1f s", self.provider, self._last_error, delay)
            await asyncio.sleep(delay)

    async def _attempt(self) -> str | None:
        """Open the tunnel and watch it; the reason it failed, or None when its program went away."""
        if self._factory is not None and self.restarts:
            try:
                self.tunnel = self._factory()
            except TunnelError as exc:
                return str(exc)
        try:
            url = await self.tunnel.open()
        except TunnelError as exc:
            return str(exc)
        self._public_url = url
        self._set_state("online")
        if self.check_interval is None:
            self.backoff.reset()
        await self._announce(url)
        return await self._watch(url)

    async def _watch(self, url: str) -> str | None:
        failures = 0
        while await self._stays_up(self.check_interval):
            error = await self._check(url)
            if error is None:
                failures = 0
                self.backoff.reset()
                continue
            self._set_error(error)
            if await self._node_down():
                continue  # not the tunnel's fault
            failures += 1
            if failures >= self.failures_before_restart:
                return error
            log.warning(
                "%s tunnel: %s (%d of %d)",
                self.provider,
                self._last_error,
                failures,
                self.failures_before_restart,
            )
        return None

    async def _stays_up(self, interval: float | None) -> bool:
        """Wait ``interval`` seconds (forever for None) unless the tunnel goes down first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval if interval is not None else float("inf")
        while self.tunnel.alive():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(self.poll_interval, remaining))
        return False

    async def _check(self, url: str) -> str | None:
        error = await _probe(url, self.check_timeout)
        self._last_check, self._last_check_ok = time.time(), error is None
        return error

    async def _node_down(self) -> bool:
        if self.local_url is None:
            return False
        error = await _probe(self.local_url, self.check_timeout)
        if error is not None:
            self._set_error(f"{self._last_error}; the node does not answer locally either ({error})")
        return error is not None

    async def _announce(self, url: str) -> None:
        previous = self._announced
        log.info("%s tunnel online at %s", self.provider, self._redact(url))
        if url == previous:
            return
        self._announced = url
        if self.on_url_change is not None:
            try:
                await self.on_url_change(url, previous)
            except Exception:
                log.exception("%s tunnel: the URL change callback failed", self.provider)

    async def _close_tunnel(self) -> None:
        try:
            await self.tunnel.close()
        except Exception as exc:
            log.warning("%s tunnel: closing failed: %s", self.provider, self._redact(str(exc)))

    def _set_state(self, state: TunnelState) -> None:
        self._state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _set_error(self, text: str) -> None:
        self._last_error = self._redact(text)

    def _redact(self, text: str) -> str:
        return redact(text, self.tunnel.secrets())


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _probe(url: str, within: float) -> str | None:
    """None when ``GET url/`` answers 2xx (after redirects), else what went wrong."""
    target = url.rstrip("/") + "/"
    try:
        async with (
            asyncio.timeout(within),
            httpx.AsyncClient(timeout=within, follow_redirects=True, trust_env=not _loopback(url)) as client,
        ):
            response = await client.get(target, headers={"ngrok-skip-browser-warning": "1"})
    except TimeoutError:
        return f"GET {target} did not answer within {within:g} s"
    except httpx.HTTPError as exc:
        return f"GET {target} failed: {type(exc).__name__}: {exc}".rstrip(": ")
    if not response.is_success:
        return f"GET {target} answered {response.status_code}"
    return None
