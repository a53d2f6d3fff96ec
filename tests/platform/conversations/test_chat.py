"""Streaming chat against the real node: events, storage, titles, history, re-attaching, stopping."""

from __future__ import annotations

import time
from typing import Any

from tests.platform.conversations.support import answer_text, events, read_all, send
from tests.platform.support import RunningPlatform, Session
from tests.support import SMOLLM

SHORT = {"temperature": 0, "seed": 42, "num_predict": 12}
LONG = {"temperature": 0.8, "seed": 7, "num_predict": 400}


def _conversation(session: Session, **fields: Any) -> dict[str, Any]:
    response = session.post("/api/v1/conversations", json={"model": SMOLLM, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _wait(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_message_streams_is_stored_and_titled(chat_platform: RunningPlatform) -> None:
    chat_platform.register("ada@example.com")
    ada = chat_platform.sign_in("ada@example.com")
    conversation = _conversation(ada, options=SHORT)
    assert conversation["title"] == "New chat" and conversation["message_count"] == 0

    received = send(ada, conversation["id"], "What is the capital of France?")
    names = [event.name for event in received]
    assert names[0] == "start" and names[-1] == "done" and "delta" in names
    assert all(event.id for event in received)
    start, done = received[0].data, received[-1].data
    mid = start["assistant_message_ids"][0]
    assert start["user_message_id"] and done["id"] == mid and done["status"] == "done"
    assert done["content"] == answer_text(received, mid) != ""
    usage = done["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["ttft_ms"] > 0 and usage["duration_ms"] >= usage["ttft_ms"]

    detail = ada.get(f"/api/v1/conversations/{conversation['id']}").json()
    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "done"), ("assistant", "done")]
    assert detail["messages"][0]["content"] == "What is the capital of France?"
    assert detail["messages"][1]["content"] == done["content"]
    assert detail["message_count"] == 2 and detail["leaf_id"] == mid

    def title() -> str:
        found: str = ada.get(f"/api/v1/conversations/{conversation['id']}").json()["title"]
        return "" if found == "New chat" else found

    titled = _wait(title)
    assert 0 < len(titled) <= 61

    again = send(ada, conversation["id"], "And of Italy?")
    assert again[-1].data["usage"]["prompt_tokens"] > usage["prompt_tokens"]  # the history went along
    path = ada.get(f"/api/v1/conversations/{conversation['id']}").json()["messages"]
    assert [m["role"] for m in path] == ["user", "assistant", "user", "assistant"]
    assert path[2]["parent_id"] == mid


def test_a_client_that_leaves_reattaches_and_gets_the_rest(ada: Session) -> None:
    conversation = _conversation(ada, options=LONG)
    got: list[Any] = []
    with ada.http.stream(
        "POST",
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"content": "Tell me a long story about a dragon."},
        headers=ada.auth,
    ) as response:
        for event in events(response):
            got.append(event)
            if sum(1 for e in got if e.name == "delta") >= 3:
                break  # the browser reloads
    mid = got[0].data["assistant_message_ids"][0]
    prefix = answer_text(got, mid)
    with ada.http.stream(
        "GET",
        f"/api/v1/conversations/{conversation['id']}/messages/{mid}/stream",
        headers={**ada.auth, "Last-Event-ID": got[-1].id},
    ) as response:
        rest = read_all(response)
    assert rest[-1].name == "done" and rest[-1].id == f"{mid}:end"
    full = rest[-1].data["content"]
    assert full == prefix + answer_text(rest, mid) and len(full) > len(prefix)

    # From the start (no Last-Event-ID): the whole stored text, then the end
    with ada.http.stream(
        "GET", f"/api/v1/conversations/{conversation['id']}/messages/{mid}/stream", headers=ada.auth
    ) as response:
        replay = read_all(response)
    assert answer_text(replay, mid) == full and replay[-1].data["status"] == "done"


def test_stop_keeps_the_partial_answer(ada: Session) -> None:
    conversation = _conversation(ada, options=LONG)
    base = f"/api/v1/conversations/{conversation['id']}/messages"
    poem = {"content": "Write a very long poem."}
    with ada.http.stream("POST", base, json=poem, headers=ada.auth) as response:
        stream = events(response)
        start = next(stream)
        mid = start.data["assistant_message_ids"][0]
        assert next(stream).name == "delta"
        stopped = ada.post(f"{base}/{mid}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "stopped" and stopped.json()["content"]
        rest = list(stream)
    assert rest[-1].name == "done" and rest[-1].data["status"] == "stopped"
    stored = ada.get(f"/api/v1/conversations/{conversation['id']}").json()["messages"][-1]
    assert stored["status"] == "stopped" and stored["content"] == stopped.json()["content"]
    again = ada.post(f"{base}/{mid}/stop")
    assert again.status_code == 409 and "stopped" in again.json()["detail"]


def test_the_platform_stopping_mid_answer_leaves_it_interrupted_with_its_text(
    sqlite_chat: RunningPlatform,
) -> None:
    sqlite_chat.register("ada@example.com")
    ada = sqlite_chat.sign_in("ada@example.com")
    conversation = _conversation(ada, options=LONG)
    with ada.http.stream(
        "POST",
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"content": "Tell me a long story."},
        headers=ada.auth,
    ) as response:
        stream = events(response)
        mid = next(stream).data["assistant_message_ids"][0]
        next(stream)
        ada.http.close()
    sqlite_chat.stop()
    answer = sqlite_chat.platform.answers.answer(mid)
    assert answer is not None and answer.status == "interrupted" and answer.content


def test_continue_goes_on_from_a_length_limit(ada: Session) -> None:
    conversation = _conversation(ada, options={"temperature": 0, "seed": 1, "num_predict": 6})
    first = send(ada, conversation["id"], "Count from one to twenty in words.")
    answer = first[-1].data
    assert answer["done_reason"] == "length"
    base = f"/api/v1/conversations/{conversation['id']}/messages/{answer['id']}"
    with ada.http.stream("POST", f"{base}/continue", headers=ada.auth) as response:
        more = read_all(response)
    assert more[0].name == "start" and more[0].id == f"{answer['id']}:{len(answer['content'])}"
    done = more[-1].data
    added = answer_text(more, answer["id"])
    assert done["id"] == answer["id"] and done["content"] == answer["content"] + added and added
    path = ada.get(f"/api/v1/conversations/{conversation['id']}").json()["messages"]
    assert len(path) == 2 and path[-1]["content"] == done["content"]  # the same message grew
    assert ada.get("/api/v1/search", params={"q": done["content"].split()[-1]}).status_code == 200


def test_a_temporary_chat_streams_and_stores_nothing(ada: Session) -> None:
    turns = [
        {"role": "user", "content": "My name is Zebulon."},
        {"role": "assistant", "content": "Nice to meet you, Zebulon."},
        {"role": "user", "content": "What is my name?"},
    ]
    body = {"model": SMOLLM, "messages": turns, "options": SHORT}
    with ada.http.stream("POST", "/api/v1/temporary-chat", json=body, headers=ada.auth) as response:
        received = read_all(response)
    assert received[0].name == "start" and received[-1].name == "done"
    mid = received[0].data["assistant_message_ids"][0]
    assert received[-1].data["content"] == answer_text(received, mid) != ""
    assert received[-1].data["usage"]["prompt_tokens"] > 20  # the earlier turns went along
    assert ada.get("/api/v1/conversations").json()["items"] == []
    assert ada.get("/api/v1/search", params={"q": "Zebulon"}).json()["items"] == []
    bad = ada.post("/api/v1/temporary-chat", json={"model": SMOLLM, "messages": []})
    assert bad.status_code == 422


def test_turns_that_outgrow_the_context_are_left_out_and_summarised(ada: Session) -> None:
    options = {"temperature": 0, "seed": 3, "num_predict": 16, "num_ctx": 512}
    conversation = _conversation(ada, options=options, summarise=True)
    padding = "Here is some background about my garden, which has roses, tulips and a pond. " * 7
    for n in range(5):
        send(ada, conversation["id"], f"Question {n}. {padding}")
    detail = ada.get(f"/api/v1/conversations/{conversation['id']}").json()
    marks = [m["in_context"] for m in detail["messages"]]
    assert marks == [False] * 8 + [True] * 2  # cut at a block of 8, the newest exchange kept

    def summarised() -> str | None:
        found: str | None = ada.get(f"/api/v1/conversations/{conversation['id']}").json()["summary"]
        return found

    assert _wait(summarised, timeout=60)
    again = send(ada, conversation["id"], "What grows in my garden?")
    assert again[-1].data["status"] == "done"
