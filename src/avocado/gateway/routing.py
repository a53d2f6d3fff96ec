"""Which node takes a request: one that is healthy, online, lets requests through its breaker and has the
model; among several, the one with the fewest outstanding requests per unit of weight (ties in turn).

When no node can take it, :meth:`Router.refusal` says why, as a status and a message: 404 when no
healthy node has the model (Ollama's ``model 'x' not found``), 503 when nodes that have it are all
unavailable for now, or when no node is healthy at all.
"""

from __future__ import annotations

from collections.abc import Collection

from avocado.gateway.nodes import Node, NodePool

__all__ = ["Router"]


class Router:
    """Picks nodes from ``pool`` for a model; a request tries at most ``max_attempts`` distinct nodes."""

    def __init__(self, pool: NodePool, max_attempts: int = 3) -> None:
        self.pool = pool
        self.max_attempts = max_attempts
        self._turn = 0

    def choose(self, model: str, exclude: Collection[Node] = ()) -> Node | None:
        """The best node for ``model`` (a normalized name) not in ``exclude``; takes its breaker's probe.

        Returns ``None`` when no node can take the request now.
        """
        best: list[Node] = []
        best_load = 0.0
        for node in self.pool.nodes:
            if (
                model not in node.models
                or not node.routable
                or node in exclude
                or not node.breaker.available()
            ):
                continue
            load = node.in_flight / node.weight
            if not best or load < best_load:
                best, best_load = [node], load
            elif load == best_load:
                best.append(node)
        if not best:
            return None
        self._turn += 1
        chosen = best[self._turn % len(best)] if len(best) > 1 else best[0]
        return chosen if chosen.breaker.acquire() else None

    def refusal(self, model: str, shown: str) -> tuple[int, str]:
        """Status and message when :meth:`choose` found nothing for ``model`` (``shown`` as sent)."""
        nodes = self.pool.nodes
        if not any(node.routable for node in nodes):
            if any(node.healthy and node.status == "draining" and not node.gone for node in nodes):
                return 503, "no node takes new requests: every healthy node is draining"
            return 503, "no healthy node is available"
        if any(model in node.models for node in nodes if not node.gone):
            return 503, f"no node that serves model '{shown}' can take requests right now"
        return 404, f"model '{shown}' not found"
