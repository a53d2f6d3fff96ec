"""Background jobs on ``taskiq``: in this process by default, on RabbitMQ or Redis across replicas.

Without ``broker_url`` jobs run on the event loop of the process that queued them
(``InMemoryBroker``). With ``amqp://`` (``taskiq-aio-pika``) or ``redis://`` (``taskiq-redis``'s
stream broker, acknowledged deliveries) every replica both queues jobs and works on them: a job
queued by one may run on another. E-mail is the first job; chat generation stays in-process,
next to the stream it feeds. docs/benchmarks.md has why taskiq (against dramatiq) and its figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from taskiq import AsyncBroker, InMemoryBroker
from taskiq.receiver import Receiver

from avocado.platform.mail import Mailer
from avocado.redact import redact_url

__all__ = ["QUEUE", "Jobs", "ResetLinks", "make_broker"]

# (e-mail, client address, user agent) -> (to, link, expiry), or None when no link is due. Runs in
# the worker, so the token is made where it is mailed and never rides the broker.
ResetLinks = Callable[[str, str, str], tuple[str, str, datetime] | None]

log = logging.getLogger(__name__)

QUEUE = "avocado.platform.jobs"
GRACE = 10.0  # seconds jobs under way get to finish at shutdown


def make_broker(url: str | None, queue: str = QUEUE) -> AsyncBroker:
    """The broker for ``url``: ``None`` in-process, ``amqp(s)://`` RabbitMQ, ``redis(s)://`` Redis."""
    if url is None:
        return InMemoryBroker(max_async_tasks=16)
    if url.startswith(("amqp://", "amqps://")):
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue

        return AioPikaBroker(url, exchange=Exchange(name=queue), task_queues=[Queue(name=queue)])
    if url.startswith(("redis://", "rediss://")):
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(url, queue_name=queue, consumer_group_name=queue)
    raise ValueError("broker_url must be amqp(s):// or redis(s)://")


async def _settled(task: asyncio.Future[None], seconds: float) -> bool:
    """Whether ``task`` finished within ``seconds`` (its error, if any, is logged, not raised)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done and not task.cancelled() and task.exception() is not None:
        log.warning("job worker ended with %r", task.exception())
    return bool(done)


class Jobs:
    def __init__(self, broker_url: str | None, mailer: Mailer | None, *, queue: str = QUEUE) -> None:
        self.distributed = broker_url is not None
        self.where = redact_url(broker_url) if broker_url else "in-process"
        self.broker = make_broker(broker_url, queue)
        self.mailer = mailer

        # taskiq renames the function it registers, so it gets one of its own (not a bound method).
        async def send_mail(to: str, subject: str, body: str) -> None:
            await self._send_mail(to, subject, body)

        async def send_reset(email: str, address: str, user_agent: str) -> None:
            await self._send_reset(email, address, user_agent)

        self._mail = self.broker.register_task(send_mail, task_name="avocado.platform.send_mail")
        self._reset = self.broker.register_task(send_reset, task_name="avocado.platform.send_reset")
        self.reset_links: ResetLinks | None = None  # set once the accounts exist (build_platform)
        self.retention: Callable[[], Awaitable[None]] | None = None  # queues the retention job
        self._stop = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def can_mail(self) -> bool:
        return self.mailer is not None

    def register(self, name: str, work: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """Make ``work`` a job named ``name`` (the same name on every replica); what queues it."""
        task = self.broker.register_task(work, task_name=name)

        async def queue(*args: Any) -> None:
            await task.kiq(*args)

        return queue

    async def start(self) -> None:
        """Connect; with a shared broker, also start working on the queue in this process."""
        if self.distributed:
            self.broker.is_worker_process = True
        await self.broker.startup()
        if self.distributed:
            receiver = Receiver(self.broker, run_startup=False, max_async_tasks=16)
            self._worker = asyncio.create_task(receiver.listen(self._stop), name="platform-jobs")

    async def close(self) -> None:
        """Stop working on the queue (jobs under way get ``GRACE`` seconds) and disconnect.

        Every wait is bounded: taskiq's receiver on a Redis stream sometimes neither stops at its
        finish event nor at cancellation (its blocking read), and a platform must still shut down.
        """
        self._stop.set()
        if self._worker is not None:
            worker, self._worker = self._worker, None
            if not await _settled(worker, GRACE):
                worker.cancel()
                if not await _settled(worker, 2.0):
                    log.warning("the job worker did not stop in time; leaving it behind")
        if not await _settled(asyncio.ensure_future(self.broker.shutdown()), GRACE):
            log.warning("the job broker did not disconnect in time")

    # -- jobs ---------------------------------------------------------------------------------------

    async def _send_mail(self, to: str, subject: str, body: str) -> None:
        if self.mailer is None:
            log.warning("a mail job for %s came to a replica without smtp_url; dropped", to)
            return
        try:
            await asyncio.to_thread(self.mailer.send, to, subject, body)
        except Exception as exc:
            log.error("could not send mail to %s: %s", to, exc)
            raise

    async def send_mail(self, to: str, subject: str, body: str) -> None:
        await self._mail.kiq(to, subject, body)

    async def send_reset(self, email: str, address: str, user_agent: str) -> None:
        """Queue a reset link for ``email``, whether or not it has an account: the worker decides, so
        the request takes as long either way and nothing secret is queued."""
        await self._reset.kiq(email, address, user_agent)

    async def _send_reset(self, email: str, address: str, user_agent: str) -> None:
        if self.mailer is None or self.reset_links is None:
            log.debug("a reset job came to a replica without smtp_url; dropped")
            return
        link = await asyncio.to_thread(self.reset_links, email, address, user_agent)
        if link is None:
            return
        to, url, expires = link
        body = (
            "Someone (hopefully you) asked to reset the password of your Avocado account.\n\n"
            f"Open this link to choose a new one (it works once, until {expires:%Y-%m-%d %H:%M} UTC):\n\n"
            f"{url}\n\nIf you did not ask, ignore this message: your password stays as it is.\n"
        )
        await self._send_mail(to, "Reset your Avocado password", body)
