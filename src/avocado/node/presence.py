"""How the world finds a node: its public URL (a supervised tunnel) and its announcements on RabbitMQ.

The tunnel supervisor reports every new public URL; the announcer records an announcement for it
(and for every change of the model list, and on an interval) in the durable outbox and publishes it
when the broker allows. Stopping announces ``offline`` before the tunnel goes down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from avocado.config import Settings
from avocado.discovery import (
    Announcer,
    AnnounceState,
    ModelInfo,
    Outbox,
    ProbeListener,
    Status,
    load_service_id,
)
from avocado.discovery.outbox import OUTBOX_FILE
from avocado.node.access import check_exposure
from avocado.tunnel import TunnelSupervisor, make_tunnel

__all__ = ["MODEL_POLL_INTERVAL", "ModelLister", "Presence"]

log = logging.getLogger(__name__)

MODEL_POLL_INTERVAL = 2.0  # seconds between looks at the model list (pulls, creates, deletes)

ModelLister = Callable[[], Sequence[ModelInfo]]


class Presence:
    """The node's public URL and its announcements, from ``start`` to ``close``."""

    def __init__(self, settings: Settings, list_models: ModelLister, capabilities: Sequence[str]) -> None:
        check_exposure(settings)  # no public URL without a key, unless asked for
        self.settings = settings
        self.list_models = list_models
        self.capabilities = tuple(capabilities)
        self.started_at = datetime.now(UTC)
        self.service_id = load_service_id(settings.state_dir)
        self.status: Status = "online"
        self.supervisor = TunnelSupervisor(
            lambda: make_tunnel(
                settings.tunnel,
                settings.local_url,
                state_dir=settings.state_dir / "tunnel",
                log_path=settings.logs_dir / "tunnel.log",
                public_url=settings.tunnel_url,
                domain=settings.tunnel_domain,
                ssh_target=settings.tunnel_ssh,
                ssh_identity=settings.tunnel_ssh_key,
            ),
            local_url=settings.local_url,
            on_url_change=self._url_changed,
            check_interval=settings.tunnel_check_interval if settings.tunnel != "none" else None,
        )
        self.announcer: Announcer | None = None
        self.probes: ProbeListener | None = None
        if settings.amqp_url is not None:
            self.announcer = Announcer(
                settings.amqp_url.get_secret_value(),
                Outbox(settings.state_dir / OUTBOX_FILE),
                self._state,
                service_id=self.service_id,
                interval=settings.announce_interval,
                started_at=self.started_at,
            )
            self.probes = ProbeListener(settings.amqp_url.get_secret_value(), self.announcer.changed)
        self._models: tuple[ModelInfo, ...] = ()
        self._poller: asyncio.Task[None] | None = None

    @property
    def public_url(self) -> str | None:
        return self.supervisor.public_url

    async def start(self) -> None:
        """Open the tunnel and start announcing; neither waits for the network."""
        self._models = await self._read_models() or ()
        await self.supervisor.start()
        if self.announcer is not None:
            await self.announcer.start()
            if self.probes is not None:
                await self.probes.start()
            self._poller = asyncio.create_task(self._poll_models(), name="presence-models")

    async def close(self) -> None:
        """Announce ``offline`` (bounded wait for the broker), then take the tunnel down."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.probes is not None:
            await self.probes.close()
        if self.announcer is not None:
            await self.announcer.close(offline=True)
            self.announcer.outbox.close()
        await self.supervisor.close()

    async def use_broker(self, amqp_url: str) -> None:
        """Announce on ``amqp_url`` from now on (new credentials), pending announcements included.

        Raises :class:`~avocado.discovery.BrokerError` (and keeps the broker it has) when the new
        URL cannot be connected to, and ``RuntimeError`` when this node does not announce.
        """
        if self.announcer is None:
            raise RuntimeError("this node does not announce on a broker")
        await self.announcer.use_broker(amqp_url)
        if self.probes is not None:
            await self.probes.use_broker(amqp_url)

    def set_status(self, status: Status) -> None:
        """``draining``: finish what runs, take nothing new (gateways read the announcement)."""
        self.status = status
        if self.announcer is not None:
            self.announcer.changed()

    def report(self) -> dict[str, Any]:
        """The tunnel and announcement part of ``GET /api/avocado/status``; holds no secret."""
        announce: dict[str, Any] | None = None
        if self.announcer is not None:
            stats = self.announcer.stats()
            announce = {
                "broker": stats.broker,
                "connected": stats.connected,
                "pending": stats.pending,
                "last_sequence": stats.last_sequence,
                "last_confirmed_sequence": stats.last_confirmed_sequence,
                "last_error": stats.last_error,
                "nobody_listening": stats.nobody_listening,
                "interval_seconds": self.settings.announce_interval,
            }
        tunnel = self.supervisor.status().as_dict()
        if tunnel.get("last_check") is not None:
            tunnel["last_check"] = datetime.fromtimestamp(tunnel["last_check"], UTC).isoformat()
        return {
            "service_id": self.service_id,
            "status": self.status,
            "public_url": self.public_url,
            "tunnel": tunnel,
            "announce": announce,
        }

    def _state(self) -> AnnounceState | None:
        url = self.public_url
        if url is None:
            return None  # the tunnel has no URL yet: the supervisor's first report announces
        return AnnounceState(url=url, status=self.status, models=self._models, capabilities=self.capabilities)

    async def _url_changed(self, url: str, previous: str | None) -> None:
        shown = self.supervisor.tunnel.redact  # a URL may carry credentials; logs get none
        log.info("public URL %s (was %s)", shown(url), shown(previous) if previous else "none")
        if self.announcer is not None:
            self.announcer.changed()

    async def _read_models(self) -> tuple[ModelInfo, ...] | None:
        try:
            return tuple(await asyncio.to_thread(self.list_models))
        except Exception as exc:  # a store mid-change, an upstream not up yet: look again next time
            log.debug("could not list models: %s", exc)
            return None

    async def _poll_models(self) -> None:
        while True:
            await asyncio.sleep(MODEL_POLL_INTERVAL)
            models = await self._read_models()
            if models is not None and models != self._models:
                self._models = models
                log.info("model list changed (%d models): announcing", len(models))
                assert self.announcer is not None
                self.announcer.changed()
