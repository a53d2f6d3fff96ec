"""Writing answers server-side, apart from the request that asked: a reload or a dropped connection
does not stop them, and any client may follow them (:mod:`live`).

Each answer is a task of this process. Its text goes to the database every :data:`FLUSH` seconds (a
heartbeat too), and to Redis every :data:`PUBLISH` seconds when configured. A stop asked on another
replica reaches the writer through the database (``stop_requested``, read at each flush). An answer
whose writer died (a replica killed) stops beating, and every replica's sweep marks it
``interrupted`` after :data:`STALE` seconds, its partial text kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

from avocado.db.base import utcnow
from avocado.platform.conversations.answers import AnswerStore
from avocado.platform.conversations.live import (
    Event,
    LiveAnswer,
    Publisher,
    follow_local,
    follow_remote,
)
from avocado.platform.conversations.schemas import MessagePublic
from avocado.platform.conversations.sending import Prepared
from avocado.platform.conversations.upstream import ChatUpstream, Ending, UpstreamFailure
from avocado.platform.limits.service import Admission

__all__ = ["FLUSH", "STALE", "Generations"]

log = logging.getLogger(__name__)

FLUSH = 0.5  # seconds between writes of the text so far (and heartbeats)
PUBLISH = 0.05  # seconds between publications of new text on Redis
SWEEP = 10.0  # seconds between sweeps for answers whose writer died
STALE = 30.0  # seconds without a heartbeat before an answer counts as interrupted

FirstExchange = Callable[[str, str], Awaitable[None]]  # (conversation id, user id)
Summarise = Callable[[str, str, str, int], Awaitable[None]]  # (conversation, user, answer, depth)


class Generations:
    def __init__(
        self,
        store: AnswerStore,
        upstream: ChatUpstream,
        publisher: Publisher,
        on_first_exchange: FirstExchange | None = None,
        on_summarise: Summarise | None = None,
    ) -> None:
        self.store = store
        self.upstream = upstream
        self.publisher = publisher
        self.on_first_exchange = on_first_exchange
        self.on_summarise = on_summarise
        self.live: dict[str, LiveAnswer] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._sends = 0  # sends of this process between their request and their rows stored

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._every(FLUSH, self._flush), name="chat-flush"),
            asyncio.create_task(self._every(SWEEP, self._sweep), name="chat-sweep"),
        ]
        if self.publisher.redis is not None:
            self._loops.append(asyncio.create_task(self._every(PUBLISH, self._publish), name="chat-publish"))

    async def close(self) -> None:
        """Stop every loop; answers still being written end ``interrupted``, their text kept."""
        for task in self._loops:
            task.cancel()
        for answer in list(self.live.values()):
            if answer.task is not None:
                answer.task.cancel()
        tasks = [answer.task for answer in self.live.values() if answer.task is not None]
        await asyncio.gather(*self._loops, *tasks, return_exceptions=True)
        await self.publisher.aclose()

    @staticmethod
    async def _every(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception as exc:  # a busy database now is no reason to stop for good
                log.warning("chat background work failed: %s", exc)

    async def _flush(self) -> None:
        writing = {
            mid: answer.text()
            for mid, answer in self.live.items()
            if not answer.ended and answer.stored.is_set()
        }
        for message_id in await asyncio.to_thread(self.store.flush, writing):
            answer = self.live.get(message_id)
            if answer is not None:
                answer.stop()

    async def _sweep(self) -> None:
        gone = await asyncio.to_thread(self.store.interrupt_stale, STALE, list(self.live))
        if gone:
            log.info("marked %d answers interrupted: the replica writing them stopped", gone)

    async def _publish(self) -> None:
        await self.publisher.publish([answer for answer in self.live.values() if not answer.ended])

    # -- writing ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def sending(self) -> Iterator[Callable[[], bool]]:
        """Count a send in progress for its duration; what it yields says, when called, whether
        other sends are in progress now (a burst, when a send's answers had better wait for their
        rows before they start)."""
        self._sends += 1
        try:
            yield lambda: self._sends > 1
        finally:
            self._sends -= 1

    def begin(
        self, prepared: Prepared, admissions: Sequence[Admission] = (), *, stored: bool = True
    ) -> list[LiveAnswer]:
        """Start writing each answer of ``prepared``; they go on whoever listens. ``admissions``
        (one per answer, in order): the user's limits they were let through; each is released,
        and the answer's tokens counted, when its answer ends. ``stored=False``: their rows are
        being written meanwhile (the model reads its prompt in the same time); call
        :meth:`stored` once they are, or :meth:`abandon` if they could not be."""
        answers = []
        for index, message in enumerate(prepared.answers):
            admission = admissions[index] if index < len(admissions) else None
            answer = LiveAnswer(message.id, prepared.conversation_id, prepared.models[message.id])
            if stored:
                answer.stored.set()
            if prepared.prefix:
                answer.append(prepared.prefix)
            self.live[message.id] = answer
            title = prepared.first_exchange and index == 0
            answer.task = asyncio.create_task(
                self._write(answer, prepared, title, admission), name=f"answer-{message.id}"
            )
            answers.append(answer)
        return answers

    @staticmethod
    def stored(answers: Sequence[LiveAnswer]) -> None:
        """The rows of ``answers`` begun with ``stored=False`` are written: their text may be."""
        for answer in answers:
            answer.stored.set()

    @staticmethod
    def abandon(answers: Sequence[LiveAnswer]) -> None:
        """The rows of ``answers`` begun with ``stored=False`` could not be written: stop them,
        writing nothing (their admissions are released as they end)."""
        for answer in answers:
            answer.abandoned = True
            answer.stored.set()
            # one that finished already waits for its row: set free, it ends writing nothing (a
            # cancel now would land in that wait and skip its end)
            if answer.task is not None and not answer.finishing:
                answer.task.cancel()

    async def _write(
        self, answer: LiveAnswer, prepared: Prepared, title: bool, admission: Admission | None = None
    ) -> None:
        used: list[int] = []
        try:
            await self._write_answer(answer, prepared, title, used)
        finally:
            self.live.pop(answer.message_id, None)  # however it ended: never written forever
            if admission is not None:
                await admission.release()
                await admission.record_tokens(sum(used))

    async def _write_answer(
        self, answer: LiveAnswer, prepared: Prepared, title: bool, used: list[int]
    ) -> None:
        status, error, ending = "done", None, None
        try:
            async for piece in self.upstream.stream(
                answer.model, prepared.history, prepared.options, prepared.user_id
            ):
                if isinstance(piece, Ending):
                    ending = piece
                    used.append(
                        int(piece.usage.get("prompt_tokens") or 0)
                        + int(piece.usage.get("completion_tokens") or 0)
                    )
                else:
                    answer.append(piece)
        except UpstreamFailure as exc:
            status, error = "failed", str(exc)
        except asyncio.CancelledError:
            status = "stopped" if answer.stopping else "interrupted"
            error = None if answer.stopping else "the server stopped while writing it"
        except Exception as exc:
            log.error("writing answer %s failed", answer.message_id, exc_info=exc)
            status, error = "failed", "the answer could not be written (internal error)"
        answer.finishing = True  # from here on a stop has nothing left to stop
        await self._end(answer, status, error, ending, prepared, title)

    async def _end(
        self,
        answer: LiveAnswer,
        status: str,
        error: str | None,
        ending: Ending | None,
        prepared: Prepared,
        title: bool,
    ) -> None:
        await answer.stored.wait()  # its row first: an answer may end before a send has stored it
        if answer.abandoned:  # _write takes it out of the live set
            return
        final = await asyncio.to_thread(
            functools.partial(
                self.store.finish,
                answer.message_id,
                content=answer.text(),
                status=status,
                usage=ending.usage if ending else None,
                error=error,
                done_reason=ending.done_reason if ending else None,
                prior_tokens=prepared.prior_tokens,
                seed=prepared.seed,
            )
        )
        if final is None:  # the conversation was deleted meanwhile
            final = MessagePublic(
                id=answer.message_id,
                parent_id=None,
                role="assistant",
                content=answer.text(),
                model=answer.model,
                status=status,  # type: ignore[arg-type]
                error=error,
                done_reason=None,
                usage=None,
                created_at=utcnow(),
                siblings=[],
                in_context=True,
            )
        answer.end(final)
        self.live.pop(answer.message_id, None)
        await self.publisher.ended(answer.message_id)
        if status == "done":
            await self._follow_up(answer, prepared, title)

    async def _follow_up(self, answer: LiveAnswer, prepared: Prepared, title: bool) -> None:
        """Queue what the model writes about the conversation next: a title, a summary."""
        try:
            if title and self.on_first_exchange is not None:
                await self.on_first_exchange(answer.conversation_id, prepared.user_id)
            depth = prepared.summarise_to
            if (
                depth is not None
                and self.on_summarise is not None
                and answer.message_id == prepared.answers[0].id
            ):
                await self.on_summarise(answer.conversation_id, prepared.user_id, answer.message_id, depth)
        except Exception as exc:
            log.warning("could not queue work for conversation %s: %s", answer.conversation_id, exc)

    def stop_here(self, message_id: str) -> bool:
        """Stop an answer this process writes; ``False`` when it is not written here."""
        answer = self.live.get(message_id)
        return answer.stop() if answer is not None else False

    # -- following ----------------------------------------------------------------------------------

    def follow(self, message_id: str, offset: int) -> AsyncIterator[Event]:
        """An answer's events from ``offset`` on: live here, or through Redis / the database."""
        answer = self.live.get(message_id)
        if answer is not None:
            return follow_local(answer, offset)

        async def read() -> MessagePublic | None:
            return await asyncio.to_thread(self.store.answer, message_id)

        return follow_remote(message_id, offset, read, self.publisher.redis)


async def merged(streams: list[AsyncIterator[Event]]) -> AsyncIterator[Event]:
    """The events of several answers as they come (side-by-side answers)."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Event]) -> None:
        try:
            async for event in stream:
                await queue.put(event)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        running = len(tasks)
        while running:
            event = await queue.get()
            if event is None:
                running -= 1
            else:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
