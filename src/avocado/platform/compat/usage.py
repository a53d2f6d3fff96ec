"""How many tokens an upstream answer used, read as it passes through to the client.

A whole answer (JSON) carries ``usage``; a stream carries it in a last chunk when the request asked
for ``stream_options.include_usage``. The platform asks for it on every stream, so every answer
counts against the user's ``tokens_per_day``, and drops that chunk again when the client had not
asked for it (the client gets the stream it asked for). A stream that ends early (the client
left) has no usage chunk: its content chunks are counted instead, about one token each.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["UsageMeter", "ask_for_usage", "tokens_of"]

_EVENT_END = re.compile(rb"\r?\n\r?\n")
MAX_BODY = 8 * 1024 * 1024  # a whole answer larger than this is passed on uncounted


def tokens_of(usage: Any) -> int | None:
    """Prompt and completion tokens of an OpenAI ``usage`` object."""
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    counted = [part for part in parts if isinstance(part, int) and not isinstance(part, bool)]
    return sum(counted) if counted else None


def ask_for_usage(body: dict[str, Any]) -> bool:
    """Make a streamed request ask for its usage; whether the client had not asked (then the usage
    chunk is the platform's, and dropped on the way back)."""
    if not body.get("stream"):
        return False
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return False
    body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return True


def _data(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    try:
        return json.loads(b"\n".join(lines))
    except ValueError:  # [DONE], or not JSON
        return None


class UsageMeter:
    """Fed the answer's bytes; gives back what the client gets; ``tokens`` once it is over."""

    def __init__(self, *, streaming: bool, drop_usage: bool = False) -> None:
        self.streaming = streaming
        self.drop_usage = drop_usage
        self._buffer = b""
        self._reported: int | None = None
        self._chunks = 0  # content chunks seen: the estimate when no usage came
        self._whole_too_large = False

    @property
    def tokens(self) -> int:
        if self.streaming:
            return self._reported if self._reported is not None else self._chunks
        if self._whole_too_large:
            return 0
        try:
            reported = tokens_of(json.loads(self._buffer).get("usage"))
        except (ValueError, AttributeError):
            reported = None
        return reported or 0

    def feed(self, chunk: bytes) -> bytes:
        if not self.streaming:
            if not self._whole_too_large:
                self._buffer += chunk
                if len(self._buffer) > MAX_BODY:
                    self._whole_too_large, self._buffer = True, b""
            return chunk
        self._buffer += chunk
        out = []
        while (end := _EVENT_END.search(self._buffer)) is not None:
            event, self._buffer = self._buffer[: end.end()], self._buffer[end.end() :]
            if self._read(event[: end.start()]):
                out.append(event)
        if len(self._buffer) > MAX_BODY:  # no event ends: not a stream to read, pass it on
            out.append(self._buffer)
            self._buffer = b""
        return b"".join(out)

    def finish(self) -> bytes:
        """What is left of a stream that did not end with a blank line."""
        if not self.streaming:
            return b""
        rest, self._buffer = self._buffer, b""
        return rest if not rest.strip() or self._read(rest) else b""

    def _read(self, event: bytes) -> bool:
        """Note what ``event`` says; whether it goes on to the client."""
        data = _data(event)
        if not isinstance(data, dict):
            return True
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and delta.get("content"):
                self._chunks += 1
        reported = tokens_of(data.get("usage"))
        if reported is None:
            return True
        self._reported = reported
        return not (self.drop_usage and not choices)
