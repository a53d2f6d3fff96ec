"""What the model writes about a conversation, as background jobs: its title after the first
exchange, and (with ``summarise`` on) a summary of the turns that no longer fit its context."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from avocado.platform.conversations.answers import AnswerStore
from avocado.platform.conversations.upstream import ChatUpstream, UpstreamFailure

__all__ = ["MAX_TITLE", "clean_title", "summary_job", "title_job"]

log = logging.getLogger(__name__)

MAX_TITLE = 60
ASK = (
    "Write a short title (at most six words) for a conversation that starts with this message. "
    "Answer with the title only.\n\nMessage: {question}"
)


def clean_title(text: str, fallback: str) -> str:
    """The first line of the model's answer without quotes, markup or a "Title:" prefix, cut at a word;
    the start of ``fallback`` (the user's message) when nothing usable is left."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = re.sub(r"^(#+\s*|\*+|title\s*:\s*)", "", line, flags=re.IGNORECASE).strip(" \"'*`_.")
    if len(line) < 2:
        line = " ".join(fallback.split())
    if len(line) > MAX_TITLE:
        line = line[:MAX_TITLE].rsplit(" ", 1)[0].rstrip(",.;:") + "…"
    return line or "New chat"


def title_job(store: AnswerStore, upstream: ChatUpstream) -> Callable[[str, str], Awaitable[None]]:
    """The job: title conversation ``conversation_id`` of ``user_id`` unless it has one by now."""

    async def make_title(conversation_id: str, user_id: str) -> None:
        exchange = await asyncio.to_thread(store.first_exchange, conversation_id)
        if exchange is None:
            return
        model, question, _ = exchange
        prompt = [{"role": "user", "content": ASK.format(question=question[:2000])}]
        try:
            answer = await upstream.complete(model, prompt, {"temperature": 0.2, "num_predict": 24}, user_id)
        except UpstreamFailure as exc:
            log.info("no title for conversation %s: %s", conversation_id, exc)
            answer = ""
        await asyncio.to_thread(store.set_title, conversation_id, clean_title(answer, question))

    return make_title


SUMMARISE = (
    "Summarise the conversation below in a few sentences: the facts, names, decisions and open "
    "questions a reader needs to go on with it. Answer with the summary only.\n\n{transcript}"
)
MAX_TRANSCRIPT = 16_000  # characters of the oldest turns sent to be summarised (their newest part)


def summary_job(
    store: AnswerStore, upstream: ChatUpstream
) -> Callable[[str, str, str, int], Awaitable[None]]:
    """The job: summarise what lies above answer ``message_id`` before ``depth``."""

    async def summarise(conversation_id: str, user_id: str, message_id: str, depth: int) -> None:
        found = await asyncio.to_thread(store.transcript_before, conversation_id, message_id, depth)
        if found is None or not found[1]:
            return
        model, transcript = found
        prompt = [{"role": "user", "content": SUMMARISE.format(transcript=transcript[-MAX_TRANSCRIPT:])}]
        try:
            summary = await upstream.complete(
                model, prompt, {"temperature": 0.2, "num_predict": 256}, user_id
            )
        except UpstreamFailure as exc:
            log.info("no summary for conversation %s: %s", conversation_id, exc)
            return
        if summary.strip():
            await asyncio.to_thread(store.set_summary, conversation_id, summary.strip(), depth)

    return summarise
