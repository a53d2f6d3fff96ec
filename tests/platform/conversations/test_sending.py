"""A send is read first (one session, nothing written), then its answers start while its rows are
stored, so the model reads its prompt meanwhile. An answer never writes before its row is there, and a
send whose rows cannot be stored writes nothing and holds nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from avocado.platform.conversations.generation import Generations
from avocado.platform.conversations.live import LiveAnswer, Publisher
from avocado.platform.conversations.sending import Planned, Prepared
from avocado.platform.errors import Conflict
from tests.platform.conversations.support import answer_text, send
from tests.platform.conversations.test_upstream import Server, _chunked, _line
from tests.platform.support import RunningPlatform, Session
from tests.support import SMOLLM

SHORT = {"temperature": 0, "seed": 42, "num_predict": 12}


def _planned(platform: RunningPlatform, content: str) -> tuple[str, Planned]:
    platform.register("ada@example.com")
    ada_id = platform.sign_in("ada@example.com").get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    chat = service.create(ada_id, "m1")
    with platform.platform.sessions() as session:
        return ada_id, service.plan(session, ada_id, chat.id, content)


async def _until(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.01)


def test_a_plan_writes_nothing_and_sends_the_history_with_my_message(platform: RunningPlatform) -> None:
    ada_id, planned = _planned(platform, "Hello?")
    prepared = planned.prepared
    assert prepared.history == [{"role": "user", "content": "Hello?"}]
    assert [row["role"] for row in planned.rows] == ["user", "assistant"]
    assert list(prepared.models.values()) == ["m1"]  # the conversation's model, none asked for
    chat = platform.platform.conversations.get(ada_id, prepared.conversation_id)
    assert chat.message_count == 0  # nothing stored until store()
    platform.platform.conversations.store(planned)
    path = platform.platform.conversations.get(ada_id, prepared.conversation_id)
    assert path.message_count == 2


def test_an_answer_begun_before_its_row_ends_only_once_the_row_is_stored(platform: RunningPlatform) -> None:
    ada_id, planned = _planned(platform, "Hello?")
    service, answers = platform.platform.conversations, platform.platform.answers
    server = Server(_chunked([_line("Hi"), _line(" there", done=True)]), pause=0)

    async def main() -> LiveAnswer:
        async with server.running() as upstream:
            generations = Generations(answers, upstream, Publisher(None))
            (answer,) = generations.begin(planned.prepared, stored=False)
            await _until(lambda: answer.finishing)  # the model said all it had to say
            await asyncio.sleep(0.1)
            assert not answer.ended and answers.answer(answer.message_id) is None  # waits for its row
            await asyncio.to_thread(service.store, planned)
            generations.stored([answer])
            assert answer.task is not None
            await answer.task
            return answer

    answer = asyncio.run(main())
    assert answer.final is not None and (answer.final.status, answer.final.content) == ("done", "Hi there")
    stored = answers.answer(answer.message_id)
    assert stored is not None and (stored.status, stored.content) == ("done", "Hi there")
    path = service.get(ada_id, planned.prepared.conversation_id)
    assert path.message_count == 2


def test_a_send_that_cannot_be_stored_writes_nothing_and_holds_nothing(platform: RunningPlatform) -> None:
    ada_id, planned = _planned(platform, "Hello?")
    service, limits = platform.platform.conversations, platform.platform.limits
    user = platform.platform.accounts.get(ada_id)
    assert user is not None
    service.delete(ada_id, planned.prepared.conversation_id)  # gone between the plan and the store
    with pytest.raises(Conflict):
        service.store(planned)

    async def abandoned(pause: float, finished: bool) -> tuple[int, int]:
        """Begun, then abandoned while the model writes (or once it has written all: the answer
        waits for its row then)."""
        server = Server(_chunked([_line("a"), _line("b"), _line("c", done=True)]), pause=pause)
        async with server.running() as upstream:
            generations = Generations(platform.platform.answers, upstream, Publisher(None))
            admission = await limits.admit(user).acquire()
            begun = generations.begin(planned.prepared, [admission], stored=False)
            await _until(lambda: begun[0].finishing if finished else server.requests)
            held = (await limits.counters.usage(ada_id)).concurrent_requests
            generations.abandon(begun)
            await asyncio.wait_for(
                asyncio.gather(*(answer.task for answer in begun if answer.task is not None)), 5
            )
            assert generations.live == {} and all(not answer.ended for answer in begun)
            return held, (await limits.counters.usage(ada_id)).concurrent_requests

    assert asyncio.run(abandoned(0.2, finished=False)) == (1, 0)
    assert asyncio.run(abandoned(0, finished=True)) == (1, 0)
    assert platform.platform.answers.answer(planned.prepared.answers[0].id) is None


def test_a_send_alone_starts_its_answers_while_a_burst_stores_first(
    sqlite_chat: RunningPlatform, ada: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, a send's answers start before its rows are stored (the model reads its prompt
    meanwhile); with another send in progress, its rows are stored first (its answers would
    otherwise run ahead of a client who sees nothing before they are). Both stream and store."""
    generations, conversations = sqlite_chat.platform.generations, sqlite_chat.platform.conversations
    steps: list[str] = []
    begin, store = generations.begin, conversations.store

    def begin_noted(prepared: Prepared, *args: Any, stored: bool = True) -> list[LiveAnswer]:
        steps.append("begin, rows stored" if stored else "begin, rows not stored")
        return begin(prepared, *args, stored=stored)

    def store_noted(planned: Planned) -> Prepared:
        stored = store(planned)
        steps.append("stored")
        return stored

    monkeypatch.setattr(generations, "begin", begin_noted)
    monkeypatch.setattr(conversations, "store", store_noted)
    chat = ada.post("/api/v1/conversations", json={"model": SMOLLM, "options": SHORT}).json()
    with generations.sending() as others:
        assert not others()
        with generations.sending() as mine:
            assert others() and mine()
        assert not others()
        burst = send(ada, chat["id"], "Say hello.")  # another send is counted: a burst
    assert steps == ["stored", "begin, rows stored"]
    steps.clear()
    alone = send(ada, chat["id"], "Say it again.")
    assert steps == ["begin, rows not stored", "stored"]
    for received in (burst, alone):
        assert received[0].name == "start" and received[-1].name == "done"
        answer_id = received[0].data["assistant_message_ids"][0]
        assert answer_text(received, answer_id) == received[-1].data["content"] != ""
    path = ada.get(f"/api/v1/conversations/{chat['id']}").json()["messages"]
    assert [(m["role"], m["status"]) for m in path] == [("user", "done"), ("assistant", "done")] * 2
