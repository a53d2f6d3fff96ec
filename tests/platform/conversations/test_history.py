"""A send in a long chat reads the path its last answer's end kept in memory, and only while the
conversation is as that end left it: what goes to the model is always what the database says, on any
replica, whatever happened in between (answers continued, sent or regenerated elsewhere, branches
switched, a summary made, an answer still being written)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from avocado.platform.conversations.answers import AnswerStore
from avocado.platform.conversations.history import HISTORY, Kept, PathCache, Seed, Turned, walk
from avocado.platform.conversations.models import Conversation, Message
from avocado.platform.conversations.schemas import ConversationPublic
from avocado.platform.conversations.sending import Planned, Prepared
from avocado.platform.conversations.service import ConversationService
from avocado.platform.conversations.store import MAX_WALK, read_path
from tests.platform.support import RunningPlatform, platform_settings, running

SMALL_CONTEXT = {"num_ctx": 512, "num_predict": 64}  # 448 tokens of history: cut after ~15 turns


class Counting(PathCache):
    """Kept paths that count how often a send found one."""

    def __init__(self, **bounds: int) -> None:
        super().__init__(**bounds)
        self.hits = 0

    def up(self, *args: Any, **kwargs: Any) -> tuple[Turned, ...] | None:
        found = super().up(*args, **kwargs)
        self.hits += found is not None
        return found


class Replica:
    """The conversations' database code as one platform process has it, with its own kept paths."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.paths = Counting()
        self.service = ConversationService(sessions, paths=self.paths)
        self.answers = AnswerStore(sessions, paths=self.paths)

    def plan(self, user_id: str, chat_id: str, content: str, **where: Any) -> Planned:
        with self.sessions() as session:
            return self.service.plan(session, user_id, chat_id, content, **where)

    def end(self, prepared: Prepared, text: str, tokens: int, index: int = 0) -> None:
        self.answers.finish(
            prepared.answers[index].id,
            content=text,
            status="done",
            usage={"prompt_tokens": 1, "completion_tokens": tokens},
            prior_tokens=prepared.prior_tokens,
            seed=prepared.seed,
        )


def _sent(planned: Planned) -> tuple[Any, ...]:
    """What a planned send gives the model and records: the history, the first depth sent, and
    the depth a summary should reach."""
    prepared = planned.prepared
    return prepared.history, planned.rows[-1]["context_depth"], prepared.summarise_to


def _truth(platform: RunningPlatform, user_id: str, chat_id: str, content: str) -> tuple[Any, ...]:
    """The same send read by the query alone (no kept paths)."""
    with platform.platform.sessions() as session:
        plain = ConversationService(platform.platform.sessions)
        return _sent(plain.plan(session, user_id, chat_id, content))


def _user(platform: RunningPlatform) -> str:
    platform.register("ada@example.com")
    user_id: str = platform.sign_in("ada@example.com").get("/api/v1/users/me").json()["id"]
    return user_id


def _two_replicas(
    platform: RunningPlatform, **create: Any
) -> tuple[str, Replica, Replica, ConversationPublic]:
    """A user, two processes' conversations code on the platform's database, and a conversation."""
    user_id = _user(platform)
    here, there = Replica(platform.platform.sessions), Replica(platform.platform.sessions)
    return user_id, here, there, here.service.create(user_id, "m1", **create)


def _send(platform: RunningPlatform, replica: Replica, user_id: str, chat_id: str, content: str) -> Prepared:
    """Send through ``replica`` after checking it plans what the query alone would."""
    planned = replica.plan(user_id, chat_id, content)
    assert _sent(planned) == _truth(platform, user_id, chat_id, content)
    return replica.service.store(planned)


WORDS = ("avocado", "toast", "seed", "ripe", "green")


def _words(rng: random.Random, most: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, most)))


def test_a_long_chat_reads_its_path_from_memory_and_sends_what_the_database_holds(
    platform: RunningPlatform,
) -> None:
    user_id = _user(platform)
    one = Replica(platform.platform.sessions)
    chat = one.service.create(user_id, "m1", system="Be brief.", options=SMALL_CONTEXT, summarise=True)
    rng = random.Random(7)
    for turn in range(40):
        prepared = _send(platform, one, user_id, chat.id, _words(rng, 30))
        answer = _words(rng, 60)
        one.end(prepared, answer, tokens=rng.randint(5, 60))
        if turn == 25:  # a summary moves the budget down, then (shorter) up: read again
            one.answers.set_summary(chat.id, "We spoke of avocados. " * 20, 8)
        if turn == 32:
            one.answers.set_summary(chat.id, "Avocados.", 16)
    assert one.paths.hits == 38  # all but the first send and the one after a shorter summary
    detail = one.service.detail(user_id, chat.id)
    assert not detail.messages[0].in_context  # the chat outgrew its context: cuts were read from memory


def test_what_another_replica_changes_is_never_missed(platform: RunningPlatform) -> None:
    user_id, here, there, chat = _two_replicas(platform, options=SMALL_CONTEXT)
    last = None
    for n in range(6):
        last = _send(platform, here, user_id, chat.id, f"question {n}")
        here.end(last, f"answer {n} " * 10, tokens=25)
    assert last is not None

    # continued elsewhere: the same answer (the kept leaf) grows
    resumed = there.service.resume(user_id, chat.id, last.answers[0].id)
    there.answers.finish(
        last.answers[0].id,
        content=resumed.prefix + " and more",
        status="done",
        usage={"completion_tokens": 4},
        prior_tokens=resumed.prior_tokens,
    )
    hits = here.paths.hits
    after = _send(platform, here, user_id, chat.id, "go on")
    assert here.paths.hits == hits and "and more" in after.history[-2]["content"]
    here.end(after, "went on", tokens=3)

    # sent elsewhere, then regenerated elsewhere and switched back to the branch this replica kept
    elsewhere = _send(platform, there, user_id, chat.id, "from there")
    there.end(elsewhere, "answered there", tokens=3)
    again = there.service.regenerate(user_id, chat.id, elsewhere.answers[0].id, None)
    there.end(again, "answered again", tokens=3)
    there.service.set_leaf(user_id, chat.id, elsewhere.answers[0].id)
    mine = _send(platform, here, user_id, chat.id, "back here")
    assert mine.history[-2]["content"] == "answered there"
    here.end(mine, "here again", tokens=3)
    hits = here.paths.hits
    _send(platform, here, user_id, chat.id, "and once more")
    assert here.paths.hits == hits + 1  # nothing changed since its own answer's end: from memory


def test_an_answer_still_being_written_is_never_kept(platform: RunningPlatform) -> None:
    user_id = _user(platform)
    one = Replica(platform.platform.sessions)
    chat = one.service.create(user_id, "m1")
    first = _send(platform, one, user_id, chat.id, "first")
    one.answers.flush({first.answers[0].id: "half an ans"})
    second = _send(platform, one, user_id, chat.id, "while it writes")  # reads the half answer
    assert second.seed is None
    one.end(second, "second answer", tokens=3)
    one.end(first, "half an answer, then the rest", tokens=8)
    hits = one.paths.hits
    third = _send(platform, one, user_id, chat.id, "third")
    assert one.paths.hits == hits
    assert "half an answer, then the rest" in [message["content"] for message in third.history]


def test_answers_side_by_side_keep_a_path_only_when_nothing_ended_after(platform: RunningPlatform) -> None:
    user_id = _user(platform)
    one = Replica(platform.platform.sessions)
    chat = one.service.create(user_id, "m1")
    for order in ((1, 0), (0, 1)):
        planned = one.plan(user_id, chat.id, f"both, {order}", models=["m1", "m2"])
        assert _sent(planned) == _truth(platform, user_id, chat.id, f"both, {order}")
        prepared = one.service.store(planned)
        for index in order:
            one.end(prepared, f"answer of {prepared.answers[index].model}", tokens=4, index=index)
        hits = one.paths.hits
        nxt = _send(platform, one, user_id, chat.id, "next")
        assert one.paths.hits == hits  # the other answer's end moved the conversation on
        one.end(nxt, "fine", tokens=1)


def test_the_walk_in_memory_reads_what_the_query_reads(platform: RunningPlatform) -> None:
    """:func:`walk` over a whole path answers what :data:`HISTORY` does, for any start, new message's
    tokens, budget and step limit, on a tree with branches."""
    user_id = _user(platform)
    one = Replica(platform.platform.sessions)
    chat = one.service.create(user_id, "m1")
    rng = random.Random(3)
    for n in range(12):
        prepared = _send(platform, one, user_id, chat.id, _words(rng, 20))
        one.end(prepared, _words(rng, 40), tokens=rng.randint(1, 40))
        if n % 4 == 3:  # a branch beside the answer, and one beside my message
            again = one.service.regenerate(user_id, chat.id, prepared.answers[0].id, None)
            one.end(again, _words(rng, 10), tokens=rng.randint(1, 40))
            assert prepared.user_message is not None
            edited = one.service.send(user_id, chat.id, "edited", edit_of=prepared.user_message.id)
            one.end(edited, _words(rng, 10), tokens=rng.randint(1, 40))
    with platform.platform.sessions() as session:
        ids = list(session.scalars(select(Message.id)))
        for start in ids:
            whole = [
                (m.id, m.parent_id, m.role, m.content, m.depth, m.tokens, m.status)
                for m in reversed(read_path(session, start, MAX_WALK))
            ]
            for extra, budget, steps in ((0, 0, MAX_WALK), (7, 60, MAX_WALK), (50, 200, 3), (0, 10**6, 5)):
                params = {"start": start, "extra": extra, "budget": budget, "steps": steps}
                queried = [tuple(row) for row in session.execute(HISTORY, params)]
                assert walk(whole, extra, budget, steps) == queried


def _kept(leaf: str, size: int, root: bool = True, version: int = 1) -> Kept:
    turn: Turned = (leaf, None if root else "above", "user", "x", 0, 1, "done")
    return Kept(leaf, version, 100, (turn,), size)


def test_kept_paths_are_bounded_and_a_larger_budget_reads_again() -> None:
    paths = PathCache(max_paths=2, max_bytes=3200)  # one path holds 200 bytes at most
    paths.keep("a", _kept("la", 150))
    paths.keep("b", _kept("lb", 150))
    assert paths.up("a", "la", 1, 100) is not None  # a is now the most recently used
    paths.keep("c", _kept("lc", 150))
    assert paths.up("b", "lb", 1, 100) is None  # the least recently used went
    assert paths.up("a", "la", 1, 100) is not None and paths.up("c", "lc", 1, 100) is not None
    paths.keep("c", _kept("lc", 201))  # too large for one: not kept, and the old one is gone
    assert paths.up("c", "lc", 1, 100) is None and paths.up("a", "la", 1, 100) is not None
    assert paths.up("a", "lb", 1, 100) is None  # another branch: not this one...
    assert paths.up("a", "la", 1, 10**6) is not None  # ...which reaches the root: any budget
    assert paths.up("a", "la", 2, 100) is None  # moved on since: forgotten for good
    assert paths.up("a", "la", 1, 100) is None
    paths.keep("e", _kept("le", 150, root=False))
    assert paths.up("e", "le", 1, 100) is not None
    assert paths.up("e", "le", 1, 101) is None  # may need turns it does not hold
    paths.forget("e")
    assert paths.up("e", "le", 1, 100) is None
    many = PathCache(max_bytes=3200)
    for n in range(22):  # 22 x 150 bytes: the first goes
        many.keep(str(n), _kept(f"l{n}", 150))
    assert many.up("0", "l0", 1, 100) is None and many.up("1", "l1", 1, 100) is not None


def test_a_path_is_not_kept_when_what_was_read_does_not_cover_it() -> None:
    """An answer counted below zero (as an old import could store) could let a later walk read past
    what the send read: nothing is kept then."""
    up: list[Turned] = [("m", "p", "user", "hi", 1, 5, "done"), ("p", "r", "assistant", "yo", 0, 98, "done")]
    seed = Seed("c", "a", up, 100, 1)
    assert Kept.after(seed, ("a", "m", "assistant", "ok", 2, 3, "done"), 2) is not None  # 3 + 5 + 98 > 100
    assert Kept.after(seed, ("a", "m", "assistant", "ok", 2, -10, "done"), 2) is None


def test_an_answer_continued_between_a_send_read_and_stored_is_not_kept(platform: RunningPlatform) -> None:
    user_id, here, there, chat = _two_replicas(platform)
    first = _send(platform, here, user_id, chat.id, "first")
    here.end(first, "short", tokens=1)
    planned = here.plan(user_id, chat.id, "second")  # reads "short" from memory
    assert planned.prepared.seed is not None and here.paths.hits == 1
    resumed = there.service.resume(user_id, chat.id, first.answers[0].id)
    there.answers.finish(first.answers[0].id, content="short, then long", status="done")
    second = here.service.store(planned)
    here.end(second, "answered", tokens=1)  # finds two versions more than its send made: keeps nothing
    third = _send(platform, here, user_id, chat.id, "third")
    assert here.paths.hits == 1 and "short, then long" in [m["content"] for m in third.history]
    assert resumed.prefix == "short"  # what it continued


def test_an_answer_being_continued_elsewhere_is_read_again(platform: RunningPlatform) -> None:
    """Continued on another replica and still being written there: its text so far is what the
    database holds, not the text this replica kept when the answer first ended."""
    user_id, here, there, chat = _two_replicas(platform)
    first = _send(platform, here, user_id, chat.id, "first")
    here.end(first, "short", tokens=1)
    resumed = there.service.resume(user_id, chat.id, first.answers[0].id)
    there.answers.flush({first.answers[0].id: resumed.prefix + " and growing"})
    second = _send(platform, here, user_id, chat.id, "meanwhile")
    assert here.paths.hits == 0 and second.history[-2]["content"] == "short and growing"


def test_the_platform_keeps_paths_unless_told_not_to(platform: RunningPlatform, tmp_path: Path) -> None:
    """Its sends and its answers' ends share one cache (else nothing kept would ever be read);
    ``kept_paths = 0`` keeps none."""
    user_id = _user(platform)
    service, answers = platform.platform.conversations, platform.platform.answers
    chat = service.create(user_id, "m1")
    prepared = service.send(user_id, chat.id, "hello")
    answers.finish(prepared.answers[0].id, content="hi", status="done", seed=prepared.seed)
    with platform.platform.sessions() as session:
        version = session.get(Conversation, chat.id).version
    paths = service._paths
    assert paths is not None and paths is answers._paths
    assert paths.up(chat.id, prepared.answers[0].id, version, 10**6) is not None
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    for off in running(platform_settings(tmp_path / "off", url, kept_paths=0)):
        assert off.platform.conversations._paths is None and off.platform.answers._paths is None


def test_an_answer_ending_after_its_path_changed_keeps_nothing(platform: RunningPlatform) -> None:
    """While an answer is written, an earlier answer on its path is continued elsewhere and the
    branch switched back: the end finds the conversation's leaf as it left it, but not its version."""
    user_id, here, there, chat = _two_replicas(platform)
    earlier = _send(platform, here, user_id, chat.id, "earlier")
    here.end(earlier, "brief", tokens=1)
    writing = _send(platform, here, user_id, chat.id, "now")  # its answer not ended yet
    resumed = there.service.resume(user_id, chat.id, earlier.answers[0].id)
    there.answers.finish(earlier.answers[0].id, content=resumed.prefix + ", then more", status="done")
    there.service.set_leaf(user_id, chat.id, writing.answers[0].id)  # back to the answer being written
    here.end(writing, "answered", tokens=1)
    hits = here.paths.hits
    after = _send(platform, here, user_id, chat.id, "next")
    assert here.paths.hits == hits and "brief, then more" in [m["content"] for m in after.history]
