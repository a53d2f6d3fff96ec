"""Tool calls in model output: found, parsed and kept out of the streamed text.

Models that call tools answer with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
blocks (Qwen/Hermes/SmolLM style) or bare JSON. While the output so far could still be a tool
call, it is held back; once it cannot, it streams as ordinary content.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["ToolCallCollector", "parse_tool_calls"]

_OPENING = "<tool_call>"
_TOOL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def _calls_from(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return []
        item = item.get("function", item) if isinstance(item.get("function"), dict) else item
        name = item.get("name")
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                return []
        if not isinstance(name, str) or not isinstance(args, dict):
            return []
        calls.append({"function": {"name": name, "arguments": args}})
    return calls


def parse_tool_calls(text: str) -> list[dict[str, Any]]:
    """Find tool calls in model output: ``<tool_call>{...}</tool_call>`` blocks or bare JSON."""
    decoder = json.JSONDecoder()
    blocks = _TOOL_TAG.findall(text)
    candidates = blocks if blocks else [text.strip()]
    calls: list[dict[str, Any]] = []
    for block in candidates:
        block = block.strip()
        while block:
            try:
                value, end = decoder.raw_decode(block)
            except ValueError:
                break
            found = _calls_from(value)
            if not found:
                break
            calls.extend(found)
            block = block[end:].lstrip()
    return calls


class ToolCallCollector:
    """Feeds streamed text through; holds it while it may be a tool call."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.held = ""
        self.passing = not enabled

    def feed(self, text: str) -> str:
        if self.passing:
            return text
        self.held += text
        start = self.held.lstrip()
        if not start:
            return ""
        if start[0] in "{[" or start.startswith(_OPENING) or _OPENING.startswith(start):
            return ""
        self.passing = True
        out, self.held = self.held, ""
        return out

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """Return (text still held, tool calls found in it)."""
        held, self.held = self.held, ""
        if not held:
            return "", []
        calls = parse_tool_calls(held)
        return ("", calls) if calls else (held, [])
