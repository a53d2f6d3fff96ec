"""Reading the platform's server-sent events in tests, and a conversation to talk in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.platform.support import Session

__all__ = ["SseEvent", "answer_text", "events", "read_all", "send"]


@dataclass
class SseEvent:
    name: str
    data: dict[str, Any]
    id: str


def events(response: httpx.Response) -> Iterator[SseEvent]:
    """The events of a ``text/event-stream`` answer as they arrive."""
    assert response.status_code == 200, response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    name, event_id = "message", ""
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield SseEvent(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line.startswith("id:"):
            event_id = line[3:].strip()


def read_all(response: httpx.Response) -> list[SseEvent]:
    return list(events(response))


def answer_text(received: list[SseEvent], message_id: str) -> str:
    deltas = [e for e in received if e.name == "delta" and e.data["message_id"] == message_id]
    return "".join(e.data["content"] for e in deltas)


def send(session: Session, conversation_id: str, content: str, **fields: Any) -> list[SseEvent]:
    """Send a message and read the whole answer."""
    with session.http.stream(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": content, **fields},
        headers=session.auth,
        timeout=120,
    ) as response:
        return read_all(response)
