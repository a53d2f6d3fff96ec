"""The nodes behind the gateway: where they are, what they serve and how they are doing.

A :class:`NodePool` holds static nodes (``URL[,api_key]``) and the nodes a discovery
:class:`~avocado.discovery.Registry` knows, kept in step with it through its ``on_change``. Every
``health_interval`` seconds it asks each node for ``GET /api/tags``: that says whether the node is
healthy and which models it serves. Requests report back too (:meth:`Node.succeeded`,
:meth:`Node.failed`), and each node's :class:`Breaker` stops sending it requests after
``breaker_failures`` failures in a row until a probe, ``breaker_cooldown`` seconds later, succeeds.
A node that refuses the gateway's key (401/403) is ``unauthorized``: shown as such, sent nothing,
and checked again like any unhealthy node.

A node that announces ``draining`` gets no new requests; one that leaves discovery (``offline``, or
its TTL ran out) is dropped as soon as its last request has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from avocado.discovery import Announcement, Registry, redact_url
from avocado.gateway.nodes.breaker import Breaker
from avocado.gateway.nodes.node import Node, describe_error
from avocado.gateway.nodes.spec import NodeSpec
from avocado.lean_http import DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, Upstream

__all__ = ["KEEPALIVE_EXPIRY", "NodePool"]

log = logging.getLogger(__name__)

# Idle connections to nodes are dropped before servers drop them (uvicorn after 5 s), so that a
# health check rarely meets a connection closed under it.
KEEPALIVE_EXPIRY = 4.0


class _CheckFailed(Exception):
    pass


class _Unauthorized(_CheckFailed):
    """The node refused the gateway's key for it (or its lack of one)."""


class NodePool:
    """Static nodes plus those ``registry`` knows; health checks between :meth:`start` and :meth:`close`.

    ``discovery_api_key`` is sent to discovered nodes (announcements carry no keys); ``tls`` verifies
    ``https`` nodes (default: the system's CAs). ``first_byte_timeout`` and ``stream_idle_timeout``
    bound how long a request waits on a node (see :mod:`avocado.lean_http`).
    """

    def __init__(
        self,
        nodes: Iterable[NodeSpec | str] = (),
        registry: Registry | None = None,
        *,
        discovery_api_key: str | None = None,
        health_interval: float = 5.0,
        health_timeout: float = 2.0,
        breaker_failures: int = 3,
        breaker_cooldown: float = 10.0,
        connect_timeout: float = 5.0,
        first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT,
        stream_idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = 1024,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.tls = tls
        self.discovery_api_key = discovery_api_key
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.breaker_failures = breaker_failures
        self.breaker_cooldown = breaker_cooldown
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._clock = clock
        self._nodes: dict[str, Node] = {}
        self._static_by_url: dict[str, Node] = {}
        self.nodes: tuple[Node, ...] = ()  # the current nodes, rebuilt on every change (read on each request)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self.upstream = Upstream(
            connect_timeout=connect_timeout,
            max_idle=max_connections,
            idle_expiry=KEEPALIVE_EXPIRY,
            tls=tls,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=stream_idle_timeout,
        )
        self._health: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        for spec in nodes:
            self.add(NodeSpec.parse(spec) if isinstance(spec, str) else spec)
        if registry is not None:
            previous = registry.on_change

            def on_change(changed: Registry) -> None:
                if previous is not None:
                    previous(changed)
                self.sync()

            registry.on_change = on_change
            self.sync()

    # -- membership ---------------------------------------------------------------------------------

    def add(self, spec: NodeSpec) -> Node:
        """Add a static node."""
        url = spec.url.rstrip("/")
        name = spec.name or url
        if name in self._nodes or url in self._static_by_url:
            raise ValueError(f"node {redact_url(name)!r} is listed twice")
        node = Node(name, url, api_key=spec.api_key, weight=spec.weight, breaker=self._breaker())
        self._nodes[name] = node
        self._static_by_url[url] = node
        self._rebuild()
        return node

    def get(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def sync(self) -> None:
        """Take the registry's live nodes in: new ones, moved ones, draining ones, and those that left."""
        if self.registry is None:
            return
        seen: set[str] = set()
        announced_static: set[str] = set()
        for announcement in self.registry.snapshot():
            url = announcement.url.rstrip("/")
            static = self._static_by_url.get(url)
            if static is not None:  # listed statically too: the announcement only tells its status
                static.status = announcement.status
                announced_static.add(url)
                continue
            seen.add(announcement.service_id)
            self._take(announcement, url)
        for url, node in self._static_by_url.items():
            if url not in announced_static:
                node.status = "online"
        for node in list(self._nodes.values()):
            if node.source == "discovery" and node.name not in seen and not node.gone:
                log.info("gateway: node %s left discovery", node.name)
                node.gone = True
        self._sweep()
        self._rebuild()

    def _take(self, announcement: Announcement, url: str) -> None:
        node = self._nodes.get(announcement.service_id)
        if node is not None and node.source == "static":
            log.warning("gateway: ignoring discovered node %s: a static node has that name", node.name)
            return
        if node is None:
            node = Node(
                announcement.service_id,
                url,
                api_key=self.discovery_api_key,
                source="discovery",
                breaker=self._breaker(),
            )
            self._nodes[node.name] = node
            log.info("gateway: node %s discovered at %s", node.name, redact_url(url))
            self._spawn_check(node)
        elif node.url != url or node.gone:
            log.info("gateway: node %s is now at %s", node.name, redact_url(url))
            node.url, node.gone = url, False
            self._spawn_check(node)
        if node.status != announcement.status:
            log.info("gateway: node %s is %s", node.name, announcement.status)
        node.status = announcement.status
        node.set_announced(announcement.models)

    def begin(self, node: Node) -> None:
        """A request goes to ``node``."""
        node.in_flight += 1
        node.requests += 1

    def end(self, node: Node) -> None:
        """A request on ``node`` ended; a node that left is dropped with its last request."""
        node.in_flight -= 1
        if node.gone and node.in_flight <= 0:
            self._sweep()
            self._rebuild()

    def _sweep(self) -> None:
        for node in [n for n in self._nodes.values() if n.gone and n.in_flight <= 0]:
            del self._nodes[node.name]
            log.info("gateway: node %s removed", node.name)

    def _rebuild(self) -> None:
        self.nodes = tuple(self._nodes[name] for name in sorted(self._nodes))

    def _breaker(self) -> Breaker:
        return Breaker(self.breaker_failures, self.breaker_cooldown, self._clock)

    # -- health -------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client for health checks and listings (requests go through :attr:`upstream`)."""
        if self._client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=self.connect_timeout),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                    keepalive_expiry=KEEPALIVE_EXPIRY,
                ),
                follow_redirects=False,
                trust_env=False,
                verify=self.tls if self.tls is not None else True,
            )
            for name in list(client.headers.keys()):  # only what the gateway means to send
                del client.headers[name]
            self._client = client
        return self._client

    async def start(self) -> None:
        """Check every node once (at most ``health_timeout`` s), then keep checking in the background."""
        self.loop = asyncio.get_running_loop()
        await self.check_all()
        self._health = asyncio.create_task(self._health_loop(), name="gateway health checks")

    async def close(self) -> None:
        tasks = [t for t in (self._health, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._health = None
        await self.upstream.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await self.check_all()
            except Exception:  # a bug here must not end health checking for good
                log.exception("gateway: health check round failed")

    async def check_all(self) -> None:
        self.sync()  # also drops nodes whose TTL ran out when no watcher sweeps the registry
        await asyncio.gather(*(self.check(node) for node in self.nodes if not node.gone))

    async def check(self, node: Node) -> bool:
        """``GET /api/tags`` on ``node``: health and models; the breaker's probe once its cooldown passed."""
        counts = node.breaker.state == "closed" or node.breaker.acquire()
        started = time.perf_counter()
        try:
            entries = await self._tags(node)
        except _Unauthorized as exc:  # a key to fix, not a node fault: the breaker has no say
            if counts:
                node.breaker.release()
            self._unhealthy(node, str(exc), unauthorized=True)
            return False
        except (httpx.HTTPError, _CheckFailed, ValueError, KeyError, TypeError) as exc:
            self._unhealthy(node, describe_error(exc))
            if counts:
                node.breaker.failure()
            return False
        except BaseException:  # cancelled: no verdict
            if counts:
                node.breaker.release()
            raise
        node.observe_latency(time.perf_counter() - started)
        node.set_tags(entries)
        if not node.healthy:
            log.info("gateway: node %s is healthy again", node.name)
        node.healthy, node.checked, node.unauthorized = True, True, False
        if counts:
            node.breaker.success()
        return True

    async def _tags(self, node: Node) -> list[dict[str, Any]]:
        url, headers = node.url + "/api/tags", list(node.auth)
        try:
            response = await self.client.get(url, headers=headers, timeout=self.health_timeout)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException):
                raise
            # A kept-alive connection the node closed just as it was reused (servers close idle
            # ones after a few seconds): one more try, on a new connection, before a verdict.
            response = await self.client.get(url, headers=headers, timeout=self.health_timeout)
        if response.status_code in (401, 403):
            if node.has_api_key:
                why = "the node refuses the api key the gateway has for it"
            else:
                why = "the node wants an api key; the gateway has none for it"
            raise _Unauthorized(f"GET /api/tags answered HTTP {response.status_code}: {why}")
        if response.status_code != 200:
            raise _CheckFailed(f"GET /api/tags answered HTTP {response.status_code}")
        models = response.json()["models"]
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise _CheckFailed("GET /api/tags did not list models")
        return models

    def _unhealthy(self, node: Node, error: str, *, unauthorized: bool = False) -> None:
        if node.healthy or not node.checked or node.unauthorized != unauthorized:
            state = "unauthorized" if unauthorized else "unhealthy"
            log.warning("gateway: node %s is %s: %s", node.name, state, error)
        node.healthy, node.checked, node.last_error = False, True, error
        node.unauthorized = unauthorized

    def _spawn_check(self, node: Node) -> None:
        """Check a node that just appeared or moved, when the pool runs (called on its loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.loop is not loop:
            return
        task = loop.create_task(self.check(node))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
