"""Answers being written, as events a client follows: here in memory, elsewhere through Redis.

Each event has an id ``<message id>:<characters so far>`` (``:end`` for the last), so a client that
reconnects with ``Last-Event-ID`` gets the rest of the text and nothing twice. The replica writing an
answer keeps it in a :class:`LiveAnswer`; with Redis it also publishes each new piece on the
answer's channel, so a client on another replica follows it there (:func:`follow_remote`), starting
from what the database holds. Without Redis a remote answer is followed by reading the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from avocado.platform.conversations.schemas import MessagePublic

__all__ = [
    "Event",
    "LiveAnswer",
    "Publisher",
    "channel_of",
    "ended_events",
    "follow_local",
    "follow_remote",
    "offset_of",
]

log = logging.getLogger(__name__)

POLL = 0.25  # seconds between reads of a remote answer without Redis
QUIET = 5.0  # seconds of silence on a channel before the database is asked whether the answer ended


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str

    def encode(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.name}\ndata: {body}\n\n".encode()


def channel_of(message_id: str) -> str:
    return f"avocado:answer:{message_id}"


def offset_of(last_event_id: str | None, message_id: str) -> int:
    """Characters the client already has, from its ``Last-Event-ID`` (0 when it is not this answer's)."""
    if not last_event_id:
        return 0
    mid, _, at = last_event_id.rpartition(":")
    if mid != message_id or not at.isdigit():
        return 0
    return int(at)


def delta(message_id: str, text: str, start: int) -> Event:
    return Event("delta", {"message_id": message_id, "content": text}, f"{message_id}:{start + len(text)}")


def ended_events(message: MessagePublic) -> Event:
    """The last event of an answer: ``done`` with the stored message, or ``failed`` with why."""
    if message.status == "failed":
        data = {"message_id": message.id, "detail": message.error or "the answer failed"}
        return Event("failed", data, f"{message.id}:end")
    return Event("done", message.model_dump(mode="json"), f"{message.id}:end")


class LiveAnswer:
    """An answer this process is writing: its text so far, and its stored end once it has one."""

    def __init__(self, message_id: str, conversation_id: str, model: str) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.model = model
        self.parts: list[str] = []
        self.length = 0
        self.final: MessagePublic | None = None
        self.stopping = False
        self.finishing = False
        self.task: asyncio.Task[None] | None = None
        self.stored = asyncio.Event()  # its row is in the database (a send starts it just before)
        self.abandoned = False  # its row was never stored: nothing to write
        self._wake = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.final is not None

    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def append(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += len(piece)
        self._notify()

    def end(self, final: MessagePublic) -> None:
        self.final = final
        self._notify()

    def stop(self) -> bool:
        """Stop writing (the text so far is kept); ``False`` when it already ended."""
        if self.finishing or self.ended or self.task is None:
            return False
        if not self.stopping:
            self.stopping = True
            self.task.cancel()
        return True

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def signal(self) -> asyncio.Event:
        """Set at the next change (take it before looking, so no change falls between)."""
        return self._wake


async def follow_local(answer: LiveAnswer, offset: int) -> AsyncIterator[Event]:
    """What is written from ``offset`` on, as it comes, then the end."""
    while True:
        wake = answer.signal()
        if answer.length > offset:
            text = answer.text()[offset:]
            yield delta(answer.message_id, text, offset)
            offset += len(text)
        if answer.final is not None:
            yield ended_events(answer.final)
            return
        await wake.wait()


async def _poll(message_id: str, offset: int, read: Callable[[], Any]) -> AsyncIterator[Event]:
    while True:
        message: MessagePublic | None = await read()
        if message is None:
            return
        if len(message.content) > offset:
            yield delta(message_id, message.content[offset:], offset)
            offset = len(message.content)
        if message.status != "generating":
            yield ended_events(message)
            return
        await asyncio.sleep(POLL)


async def follow_remote(
    message_id: str, offset: int, read: Callable[[], Any], redis: Redis | None
) -> AsyncIterator[Event]:
    """Follow an answer another replica writes (or one that has ended): the database's text, then
    the pieces published on its channel. ``read`` gives the stored message."""
    if redis is None:
        async for event in _poll(message_id, offset, read):
            yield event
        return
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(channel_of(message_id))  # before reading, so nothing falls between
        message = await read()
        if message is None:
            return
        if message.status != "generating":
            async for event in _poll(message_id, offset, read):
                yield event
            return
        known = message.content
        while True:
            raw = await pubsub.get_message(timeout=QUIET)
            if raw is None:  # quiet: maybe the writer died; the database knows
                latest = await read()
                if latest is None or latest.status != "generating":
                    async for event in _poll(message_id, offset, read):
                        yield event
                    return
                continue
            piece = json.loads(raw["data"])
            if piece.get("end"):
                async for event in _poll(message_id, offset, read):
                    yield event
                return
            at, text = int(piece["at"]), str(piece["text"])
            while at > len(known):  # published before the database had the text before it
                await asyncio.sleep(0.05)
                latest = await read()
                if latest is None:
                    return
                known = latest.content
            known = known[:at] + text
            if len(known) > offset:
                yield delta(message_id, known[offset:], offset)
                offset = len(known)


class Publisher:
    """Publishes the new text of this replica's answers on their Redis channels (when configured)."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis: Redis | None = Redis.from_url(redis_url) if redis_url else None
        self._sent: dict[str, int] = {}

    async def publish(self, answers: list[LiveAnswer]) -> None:
        if self.redis is None:
            return
        for answer in answers:
            sent = self._sent.get(answer.message_id, 0)
            if answer.length > sent:
                piece = {"at": sent, "text": answer.text()[sent:]}
                with contextlib.suppress(Exception):
                    await self.redis.publish(channel_of(answer.message_id), json.dumps(piece))
                self._sent[answer.message_id] = answer.length

    async def ended(self, message_id: str) -> None:
        self._sent.pop(message_id, None)
        if self.redis is None:
            return
        try:
            await self.redis.publish(channel_of(message_id), json.dumps({"end": True}))
        except Exception as exc:  # followers elsewhere find the end in the database
            log.warning("could not publish the end of an answer to Redis: %s", exc)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
