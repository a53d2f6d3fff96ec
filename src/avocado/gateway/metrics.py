"""The gateway's Prometheus metrics, on a registry of their own, served by ``GET /metrics``.

:class:`GatewayMetrics` counts every proxied request from its :class:`~avocado.gateway.hooks.Outcome`
(:meth:`GatewayMetrics.observe`) and shows the node pool's state (:meth:`GatewayMetrics.set_node`).
Its registry is not prometheus-client's global one, so several gateways (or tests) in one process
each have their own numbers.

Label values stay few whatever clients send: ``key`` is the key's name or id as the gateway knows it
(``anonymous`` without one), ``node`` a node of the pool (``none`` when no node answered), and
``model`` a model name only when the request was routed to a node; a model no node has (a client's
typo, a probe) is counted as ``unknown``. Past ``max_models`` distinct names, new ones count as
``other``.

Metrics: ``avocado_gateway_requests_total{model,node,key,status}``,
``avocado_gateway_request_duration_seconds{model,node}`` and
``avocado_gateway_time_to_first_token_seconds{model,node}`` (histograms),
``avocado_gateway_tokens_total{model,node,key,direction}`` (``in``: prompt, ``out``: generated),
``avocado_gateway_errors_total{model,node,kind}``, ``avocado_gateway_failovers_total`` (nodes tried
after the first), ``avocado_gateway_node_healthy{node}`` and ``avocado_gateway_node_in_flight{node}``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from avocado.api_errors import error_response
from avocado.gateway.hooks import Outcome, Refused
from avocado.gateway.nodes import NodePool

__all__ = [
    "ANONYMOUS",
    "DURATION_BUCKETS",
    "MASTER",
    "NO_NODE",
    "OTHER_MODEL",
    "UNKNOWN_MODEL",
    "GatewayMetrics",
    "metrics_route",
]

ANONYMOUS = "anonymous"  # the key label of requests without an API key
MASTER = "master"  # the key label the gateway gives its master (admin) key
NO_NODE = "none"  # the node label when no node answered
UNKNOWN_MODEL = "unknown"  # the model label of requests that were not routed
OTHER_MODEL = "other"  # the model label past ``max_models`` distinct names

# 1 ms to 2 minutes: cached/embedding answers at the low end, long generations at the top.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0
)  # fmt: skip


class GatewayMetrics:
    """The gateway's metrics, in ``registry`` (a new one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, max_models: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        self.max_models = max_models
        self._models: set[str] = set()
        self._lock = threading.Lock()
        # The labelled children met so far: ``labels()`` costs more than the count it leads to.
        self._requests: dict[tuple[str, str, str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._ttfts: dict[tuple[str, str], Histogram] = {}
        r = self.registry
        self.requests = Counter(
            "avocado_gateway_requests", "Proxied requests", ["model", "node", "key", "status"], registry=r
        )
        self.duration = Histogram(
            "avocado_gateway_request_duration_seconds",
            "Time from the request in to the last byte out",
            ["model", "node"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "avocado_gateway_time_to_first_token_seconds",
            "Time from the request in to the first byte of the body out",
            ["model", "node"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "avocado_gateway_tokens",
            "Tokens: in = prompt, out = generated",
            ["model", "node", "key", "direction"],
            registry=r,
        )
        self.errors = Counter(
            "avocado_gateway_errors", "Requests that failed, by kind", ["model", "node", "kind"], registry=r
        )
        self.failovers = Counter(
            "avocado_gateway_failovers", "Nodes tried after the first one failed", registry=r
        )
        self.node_healthy = Gauge(
            "avocado_gateway_node_healthy", "1: the node is healthy", ["node"], registry=r
        )
        self.node_in_flight = Gauge(
            "avocado_gateway_node_in_flight",
            "Requests the gateway has open on the node",
            ["node"],
            registry=r,
        )

    def observe(self, outcome: Outcome, key: str | None) -> None:
        """Count one request that has ended; ``key`` is its key's name or id, None without a key."""
        node = outcome.node or NO_NODE
        model = self._model_label(outcome)
        key_label = key or ANONYMOUS
        counted = (model, node, key_label, outcome.status)
        requests = self._requests.get(counted)
        if requests is None:
            requests = self._requests[counted] = self.requests.labels(
                model, node, key_label, str(outcome.status)
            )
        requests.inc()
        self._child(self.duration, self._durations, model, node).observe(outcome.latency_s)
        if outcome.ttft_s is not None:
            self._child(self.ttft, self._ttfts, model, node).observe(outcome.ttft_s)
        if outcome.tokens_in > 0:
            self.tokens.labels(model, node, key_label, "in").inc(outcome.tokens_in)
        if outcome.tokens_out > 0:
            self.tokens.labels(model, node, key_label, "out").inc(outcome.tokens_out)
        if outcome.error is not None:
            self.errors.labels(model, node, outcome.error).inc()
        if outcome.attempts > 1:
            self.failovers.inc(outcome.attempts - 1)

    def set_node(self, node: str, healthy: bool, in_flight: int) -> None:
        """The pool's view of ``node`` now."""
        self.node_healthy.labels(node).set(1 if healthy else 0)
        self.node_in_flight.labels(node).set(in_flight)

    def remove_node(self, node: str) -> None:
        """``node`` left the pool: its gauges go (its request counts stay)."""
        self.node_healthy.remove(node)
        self.node_in_flight.remove(node)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (body, content type); OpenMetrics if ``accept`` (an Accept header) asks."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    @staticmethod
    def _child(
        metric: Histogram, known: dict[tuple[str, str], Histogram], model: str, node: str
    ) -> Histogram:
        child = known.get((model, node))
        if child is None:
            child = known[(model, node)] = metric.labels(model, node)
        return child

    def _model_label(self, outcome: Outcome) -> str:
        model = outcome.model
        if not model or outcome.node is None:
            return UNKNOWN_MODEL
        with self._lock:
            if model in self._models:
                return model
            if len(self._models) >= self.max_models:
                return OTHER_MODEL
            self._models.add(model)
            return model


def metrics_route(
    metrics: GatewayMetrics,
    pool: NodePool,
    guard: Callable[[Request], Awaitable[None]] | None = None,
    path: str = "/metrics",
) -> Route:
    """``GET path`` serving ``metrics``, with the node gauges brought up to date at each scrape;
    ``guard`` (if any) checks the caller first (:func:`avocado.gateway.keys.metrics_guard`)."""
    shown: set[str] = set()

    async def endpoint(request: Request) -> Response:
        if guard is not None:
            try:
                await guard(request)
            except Refused as refused:
                return error_response(path, refused.status, refused.message)
        current = {node.name: node for node in pool.nodes}
        for name in shown - current.keys():
            metrics.remove_node(name)
        for name, node in current.items():
            metrics.set_node(name, node.healthy, node.in_flight)
        shown.clear()
        shown.update(current)
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return Route(path, endpoint, methods=["GET"])
