"""One request on its way through the gateway: what it asks for, how it ended, what it cost.

The body is parsed only to find ``model`` (:func:`model_of`); token counts are read from the last
bytes of the answer with regular expressions (:func:`usage_of`), never by parsing the stream.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from avocado.gateway.errors import is_openai_path
from avocado.gateway.hooks import Headers, Outcome
from avocado.gateway.nodes import Node

__all__ = ["BadBody", "Exchange", "Failure", "model_of", "usage_of"]

_OLLAMA_COUNTS = (re.compile(rb'"prompt_eval_count":\s*(\d+)'), re.compile(rb'"eval_count":\s*(\d+)'))
_OPENAI_COUNTS = (re.compile(rb'"prompt_tokens":\s*(\d+)'), re.compile(rb'"completion_tokens":\s*(\d+)'))


class BadBody(ValueError):
    """A request body the node would refuse with 400; the message is the node's."""


def model_of(path: str, body: bytes) -> str:
    """The ``model`` a request body names (or ``name``, which older Ollama clients send)."""
    if not body.strip():
        raise BadBody("Field required")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadBody("invalid JSON in request body") from None
    if not isinstance(data, dict):
        raise BadBody("Input should be a valid dictionary or object to extract fields from")
    model = data.get("model")
    if not model and not is_openai_path(path) and isinstance(data.get("name"), str):
        model = data["name"] or model
    if model is None:
        raise BadBody("model: Field required" if is_openai_path(path) else "model is required")
    if not isinstance(model, str):
        raise BadBody("model: Input should be a valid string")
    if not model:
        raise BadBody("model is required")
    return model


def usage_of(tail: bytes, openai: bool) -> tuple[int, int]:
    """Prompt and generated tokens: the last counters in ``tail`` (the end of an answer), or zeros."""
    counts = []
    for pattern in _OPENAI_COUNTS if openai else _OLLAMA_COUNTS:
        value = 0
        for match in pattern.finditer(tail):
            value = int(match.group(1))
        counts.append(value)
    return counts[0], counts[1]


@dataclass(slots=True)
class Exchange:
    """One request's state on its way through the gateway."""

    method: str
    path: str
    request_id: str
    started: float
    body: bytes = b""
    model: str | None = None  # as the client wrote it
    name: str = ""  # normalized, as nodes list it
    node: Node | None = None
    status: int = 500
    responded: bool = False  # the response has started
    streamed: bool = False
    ttft: float | None = None
    attempts: int = 0
    error: str | None = None
    cancelled: bool = False
    finished: bool = False  # the last byte is on its way: a disconnect now is the normal end
    tokens: tuple[int, int] = (0, 0)
    headers: Headers = ()  # added to the answer (the key's rate-limit state)

    def outcome(self) -> Outcome:
        return Outcome(
            request_id=self.request_id,
            model=self.model,
            node=self.node.name if self.node is not None else None,
            status=self.status,
            streamed=self.streamed,
            latency_s=time.perf_counter() - self.started,
            ttft_s=self.ttft,
            tokens_in=self.tokens[0],
            tokens_out=self.tokens[1],
            error=self.error,
            attempts=max(self.attempts, 1),
        )


@dataclass(slots=True)
class Failure:
    """Why one node did not answer: its own error response (relayed if no other node does), or a message."""

    # "upstream" (no connection, broken, 500/502/504), "timeout", "busy" (503), "unauthorized"
    # (the node refuses the gateway's key) or "not_found" (the node lacks the model)
    kind: str
    message: str
    status: int = 502
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes | None = None
