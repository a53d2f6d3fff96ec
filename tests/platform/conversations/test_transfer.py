"""Export and import: our JSON round-trips every branch; Markdown reads the branch shown; Open WebUI's
chat export comes in with its branches; others' conversations are not exported; bad files refused."""

from __future__ import annotations

from typing import Any

from avocado.platform.state import Platform
from tests.platform.support import RunningPlatform, Session


def _tree(session: Session, conversation_id: str) -> set[tuple[str, str, str | None]]:
    """(role, content, the parent's content) of every message: the tree whatever its ids."""
    exported = session.get(f"/api/v1/conversations/{conversation_id}/export").json()["conversations"][0]
    by_id = {m["id"]: m for m in exported["messages"]}
    return {
        (m["role"], m["content"], by_id[m["parent_id"]]["content"] if m["parent_id"] else None)
        for m in exported["messages"]
    }


def _branched(chat_platform: Platform, user_id: str) -> str:
    service, answers = chat_platform.conversations, chat_platform.answers
    chat = service.create(user_id, "m", title="Branches", system="Be kind.")
    first = service.send(user_id, chat.id, "Pick a colour.")
    answers.finish(first.answers[0].id, content="Blue.", status="done")
    again = service.regenerate(user_id, chat.id, first.answers[0].id, None)
    answers.finish(again.answers[0].id, content="Green.", status="done")
    more = service.send(user_id, chat.id, "Why?")
    answers.finish(more.answers[0].id, content="It is calm.", status="stopped")
    service.update(user_id, chat.id, {"tags": ["colours"], "pinned": True})
    return chat.id


def test_our_export_round_trips_every_branch(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    chat_id = _branched(platform.platform, ada_id)

    one = ada.get(f"/api/v1/conversations/{chat_id}/export")
    assert one.status_code == 200 and "attachment" in one.headers["content-disposition"]
    everything = ada.get("/api/v1/conversations/export").json()
    assert everything["format"] == "avocado.conversations" and len(everything["conversations"]) == 1

    imported = ada.post("/api/v1/conversations/import", json=everything)
    assert imported.status_code == 201, imported.text
    copy = imported.json()["items"][0]
    assert copy["id"] != chat_id and copy["title"] == "Branches" and copy["tags"] == ["colours"]
    assert copy["pinned"] is True and copy["system"] == "Be kind." and copy["message_count"] == 5
    assert _tree(ada, copy["id"]) == _tree(ada, chat_id)
    shown = [
        (m["content"], m["status"]) for m in ada.get(f"/api/v1/conversations/{copy['id']}").json()["messages"]
    ]
    assert shown == [
        ("Pick a colour.", "done"),
        ("Green.", "done"),
        ("Why?", "done"),
        ("It is calm.", "stopped"),
    ]
    assert ada.get("/api/v1/search", params={"q": "calm"}).json()["items"][0]["conversation_id"] in {
        chat_id,
        copy["id"],
    }

    markdown = ada.get(f"/api/v1/conversations/{chat_id}/export", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "# Branches" in markdown.text and "Green." in markdown.text and "Blue." not in markdown.text
    all_markdown = ada.get("/api/v1/conversations/export", params={"format": "markdown"})
    assert all_markdown.headers["content-type"].startswith("text/markdown")
    assert 'filename="conversations.md"' in all_markdown.headers["content-disposition"]
    assert all_markdown.text.count("# Branches") == 2 and all_markdown.text.count("\n---\n") == 1
    assert "It is calm." in all_markdown.text and "Blue." not in all_markdown.text


def _open_webui_chat() -> dict[str, Any]:
    """A chat as Open WebUI's "export all chats" writes it: a history tree, a regenerated answer."""
    messages = {
        "u1": {"id": "u1", "parentId": None, "childrenIds": ["a1", "a2"], "role": "user",
               "content": "Hello there", "timestamp": 1733500000, "models": ["llama3.2:1b"]},
        "a1": {"id": "a1", "parentId": "u1", "childrenIds": [], "role": "assistant", "content": "Hi!",
               "model": "llama3.2:1b", "done": True, "timestamp": 1733500001},
        "a2": {"id": "a2", "parentId": "u1", "childrenIds": ["u2"], "role": "assistant",
               "content": "General Kenobi.", "model": "llama3.2:1b", "done": True, "timestamp": 1733500002},
        "u2": {"id": "u2", "parentId": "a2", "childrenIds": ["a3"], "role": "user", "content": "Ha.",
               "timestamp": 1733500003},
        "a3": {"id": "a3", "parentId": "u2", "childrenIds": [], "role": "assistant", "content": "Indeed.",
               "model": "llama3.2:1b", "done": True, "timestamp": 1733500004},
    }  # fmt: skip
    return {
        "id": "c0ffee",
        "user_id": "someone",
        "title": "Greetings",
        "chat": {
            "id": "",
            "title": "Greetings",
            "models": ["llama3.2:1b"],
            "params": {},
            "history": {"messages": messages, "currentId": "a3"},
            "messages": [messages[k] for k in ("u1", "a2", "u2", "a3")],
            "tags": [],
            "timestamp": 1733500000000,
        },
        "updated_at": 1733500004,
        "created_at": 1733500000,
        "share_id": None,
        "archived": False,
        "pinned": False,
        "meta": {"tags": ["greetings"]},
        "folder_id": None,
    }


def test_open_webui_exports_come_in_with_their_branches(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    ada = sqlite_platform.sign_in("ada@example.com")
    imported = ada.post("/api/v1/conversations/import", json=[_open_webui_chat()])
    assert imported.status_code == 201, imported.text
    chat = imported.json()["items"][0]
    assert chat["title"] == "Greetings" and chat["model"] == "llama3.2:1b" and chat["message_count"] == 5
    path = ada.get(f"/api/v1/conversations/{chat['id']}").json()["messages"]
    assert [m["content"] for m in path] == ["Hello there", "General Kenobi.", "Ha.", "Indeed."]
    assert len(path[1]["siblings"]) == 2  # the other answer kept as a branch
    assert path[0]["created_at"].startswith("2024-12-06")


def test_exports_are_mine_and_bad_imports_are_refused(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    bob_id = sqlite_platform.register("bob@example.com")["id"]
    ada = sqlite_platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = sqlite_platform.sign_in("bob@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    chat_id = _branched(sqlite_platform.platform, ada_id)
    assert bob.get(f"/api/v1/conversations/{chat_id}/export").status_code == 404
    assert bob.get("/api/v1/conversations/export").json()["conversations"] == []
    for bad in (
        {"hello": "world"},
        [1, 2],
        {"format": "avocado.conversations", "conversations": "x"},
        "text",
    ):
        answer = ada.post("/api/v1/conversations/import", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    cycle = {
        "format": "avocado.conversations",
        "version": 1,
        "conversations": [
            {"title": "Loop", "model": "m", "messages": [
                {"id": "a", "parent_id": "b", "role": "user", "content": "x"},
                {"id": "b", "parent_id": "a", "role": "assistant", "content": "y"},
            ]}
        ],
    }  # fmt: skip
    assert ada.post("/api/v1/conversations/import", json=cycle).status_code == 422
    assert len(ada.get("/api/v1/conversations").json()["items"]) == 1  # nothing half-imported


def test_answers_asked_of_several_models_stay_side_by_side_through_export_and_import(
    platform: RunningPlatform,
) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service, answers = platform.platform.conversations, platform.platform.answers
    chat = service.create(ada_id, "m1", title="Two minds")
    both = service.send(ada_id, chat.id, "Which is larger, 9.11 or 9.9?", models=["m1", "m2"])
    for answer, text in zip(both.answers, ("9.11", "9.9"), strict=True):
        answers.finish(answer.id, content=text, status="done")
    again = service.regenerate(ada_id, chat.id, both.answers[0].id, None)  # a branch, not beside
    answers.finish(again.answers[0].id, content="9.9, sorry", status="done")
    service.set_leaf(ada_id, chat.id, both.answers[0].id)

    exported = ada.get(f"/api/v1/conversations/{chat.id}/export").json()
    copy = ada.post("/api/v1/conversations/import", json=exported).json()["items"][0]
    for chat_id in (chat.id, copy["id"]):
        shown = ada.get(f"/api/v1/conversations/{chat_id}").json()["messages"][-1]
        assert shown["content"] == "9.11" and len(shown["siblings"]) == 3
        assert [m["content"] for m in shown["beside"]] == ["9.9"]
