"""The nodes behind the gateway, by concern: :mod:`.spec` (a static node as configured),
:mod:`.breaker` (the circuit breaker), :mod:`.node` (one node's state) and :mod:`.pool` (the nodes,
kept in step with discovery, and their health checks).
"""

from __future__ import annotations

from avocado.gateway.nodes.breaker import Breaker, BreakerState
from avocado.gateway.nodes.node import Node, NodeSource, NodeStatus, describe_error
from avocado.gateway.nodes.pool import NodePool
from avocado.gateway.nodes.spec import NodeSpec
from avocado.names import normalize_model

__all__ = [
    "Breaker",
    "BreakerState",
    "Node",
    "NodePool",
    "NodeSource",
    "NodeSpec",
    "NodeStatus",
    "describe_error",
    "normalize_model",
]
