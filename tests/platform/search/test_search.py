"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector): ranked, highlighted, filtered, mine only,
in step with edits and deletes. Messages go in through the service (no model is needed to store text)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from avocado.platform.state import Platform
from tests.platform.support import RunningPlatform, Session


def _user(platform: RunningPlatform, email: str) -> tuple[Session, str]:
    platform.register(email)
    session = platform.sign_in(email)
    if session.get("/api/v1/users/me").json()["status"] != "active":
        raise AssertionError("register the admin first")
    return session, session.get("/api/v1/users/me").json()["id"]


def _exchange(chat: Platform, user_id: str, conversation_id: str, ask: str, answer: str) -> str:
    prepared = chat.conversations.send(user_id, conversation_id, ask)
    mid = prepared.answers[0].id
    chat.answers.finish(mid, content=answer, status="done")
    return mid


def _search(session: Session, q: str, **params: Any) -> dict[str, Any]:
    response = session.get("/api/v1/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_search_finds_ranks_highlights_and_filters(platform: RunningPlatform) -> None:
    ada, ada_id = _user(platform, "ada@example.com")
    service = platform.platform.conversations
    dragons = service.create(ada_id, "m1", title="Dragons of the north")
    cooking = service.create(ada_id, "m2", title="Cooking")
    found = _exchange(
        platform.platform, ada_id, dragons.id, "Tell me about dragons", "The <b>dragon</b> sleeps on gold."
    )
    _exchange(
        platform.platform,
        ada_id,
        cooking.id,
        "How do I boil an egg?",
        "Boil water, add the egg, wait nine minutes.",
    )

    hits = _search(ada, "dragon")["items"]
    kinds = [(hit["kind"], hit["conversation_id"], hit["message_id"]) for hit in hits]
    assert ("message", dragons.id, found) in kinds
    answer_hit = next(hit for hit in hits if hit["message_id"] == found)
    assert "<mark>dragon</mark>" in answer_hit["snippet"] and "<b>" not in answer_hit["snippet"]  # escaped
    assert answer_hit["title"] == "Dragons of the north" and answer_hit["score"] > 0
    assert answer_hit["created_at"].endswith(("Z", "+00:00"))  # UTC, on SQLite too
    assert _search(ada, "drag")["items"][0]["kind"] == "title"  # a prefix, titles first
    assert _search(ada, "dragon gold")["items"][0]["message_id"] == found  # every word must match
    assert _search(ada, "dragon egg")["items"] == []
    assert _search(ada, "!!! ???")["items"] == []

    # filters narrow by conversation
    assert {h["conversation_id"] for h in _search(ada, "egg", model="m2")["items"]} == {cooking.id}
    assert _search(ada, "egg", model="m1")["items"] == []
    service.update(ada_id, cooking.id, {"archived": True, "tags": ["food"]})
    assert _search(ada, "egg", archived="false")["items"] == []
    assert len(_search(ada, "egg", archived="true", tag="food")["items"]) == 2
    folder = platform.platform.folders.create(ada_id, "Myths", None)
    service.update(ada_id, dragons.id, {"folder_id": folder.id})
    assert {h["conversation_id"] for h in _search(ada, "the", folder_id=folder.id)["items"]} == {dragons.id}
    tomorrow = (service.now() + timedelta(days=1)).isoformat()
    assert _search(ada, "egg", since=tomorrow)["items"] == []
    assert _search(ada, "egg", until=tomorrow)["items"] != []


def test_search_is_mine_only_and_in_step(platform: RunningPlatform) -> None:
    ada, ada_id = _user(platform, "ada@example.com")
    bob_id = platform.register("bob@example.com")["id"]
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = platform.sign_in("bob@example.com")
    service = platform.platform.conversations
    answers = platform.platform.answers
    chat = service.create(ada_id, "m", title="Secret plans")
    _exchange(platform.platform, ada_id, chat.id, "zanzibar treasure", "The treasure is under the palm.")
    assert _search(bob, "zanzibar")["items"] == [] and _search(bob, "secret")["items"] == []
    assert len(_search(ada, "zanzibar")["items"]) == 1

    writing = service.send(ada_id, chat.id, "more please").answers[0].id
    answers.flush({writing: "quokka is being written"})
    assert _search(ada, "quokka")["items"] == []  # not until it is written
    answers.finish(writing, content="quokka written", status="stopped")
    assert _search(ada, "quokka")["items"][0]["message_id"] == writing

    service.update(ada_id, chat.id, {"title": "Holiday ideas"})
    assert _search(ada, "secret")["items"] == [] and _search(ada, "holiday")["items"][0]["kind"] == "title"
    service.delete(ada_id, chat.id)
    assert _search(ada, "zanzibar")["items"] == [] and _search(ada, "holiday")["items"] == []


def test_search_pages_and_refuses_bad_input(platform: RunningPlatform) -> None:
    ada, ada_id = _user(platform, "ada@example.com")
    service = platform.platform.conversations
    chat = service.create(ada_id, "m")
    for n in range(7):
        _exchange(platform.platform, ada_id, chat.id, f"question {n} about otters", f"otters answer {n}")
    seen: list[str] = []
    cursor = None
    while True:
        page = _search(ada, "otters", limit=5, **({"cursor": cursor} if cursor else {}))
        seen.extend(hit["message_id"] for hit in page["items"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == 14 and len(set(seen)) == 14
    assert ada.get("/api/v1/search", params={"q": ""}).status_code == 422
    assert ada.get("/api/v1/search").status_code == 422
    assert ada.get("/api/v1/search", params={"q": "x" * 201}).status_code == 422
    assert ada.get("/api/v1/search", params={"q": "otters", "cursor": "nope"}).status_code == 422
    assert ada.get("/api/v1/search", params={"q": 'otters" OR owner:*'}).status_code == 200
