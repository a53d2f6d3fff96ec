"""The message tree: regenerate and edit make sibling branches, the switcher picks one, fork copies a
path, several models answer side by side."""

from __future__ import annotations

from typing import Any

from tests.platform.conversations.support import read_all, send
from tests.platform.support import Session
from tests.support import GEMMA, SMOLLM

OPTIONS = {"temperature": 0.9, "num_predict": 8}


def _new(session: Session) -> str:
    response = session.post("/api/v1/conversations", json={"model": SMOLLM, "options": OPTIONS})
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def _path(session: Session, conversation_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = session.get(f"/api/v1/conversations/{conversation_id}").json()[
        "messages"
    ]
    return messages


def test_regenerate_and_edit_make_branches_the_switcher_follows(ada: Session) -> None:
    cid = _new(ada)
    first = send(ada, cid, "Name a fruit.")
    a1 = first[0].data["assistant_message_ids"][0]
    u1 = first[0].data["user_message_id"]
    send(ada, cid, "Another one.")

    regenerated = ada.http.stream(
        "POST", f"/api/v1/conversations/{cid}/messages/{a1}/regenerate", headers=ada.auth, json={}
    )
    with regenerated as response:
        events = read_all(response)
    a2 = events[0].data["assistant_message_ids"][0]
    assert events[0].data["user_message_id"] is None and events[-1].data["status"] == "done"
    assert events[0].data["assistant_messages"][0]["siblings"] == [a1, a2]

    path = _path(ada, cid)
    assert [m["id"] for m in path] == [u1, a2]  # the new branch is shown, the old one kept
    assert path[1]["siblings"] == [a1, a2]

    switched = ada.request("PUT", f"/api/v1/conversations/{cid}/leaf", json={"message_id": a1})
    assert switched.status_code == 200
    back = switched.json()["messages"]
    assert len(back) == 4 and back[1]["id"] == a1  # down a1's branch to its end

    edited = send(ada, cid, "Name a vegetable.", edit_of=u1)
    u2 = edited[0].data["user_message_id"]
    path = _path(ada, cid)
    assert path[0]["id"] == u2 and path[0]["siblings"] == [u1, u2] and path[0]["parent_id"] is None
    assert len(path) == 2
    assert ada.get(f"/api/v1/conversations/{cid}").json()["message_count"] == 7


def test_fork_copies_the_path_into_a_new_conversation(ada: Session) -> None:
    cid = _new(ada)
    first = send(ada, cid, "Hello.")
    send(ada, cid, "Goodbye.")
    a1 = first[0].data["assistant_message_ids"][0]
    forked = ada.post(f"/api/v1/conversations/{cid}/fork", json={"message_id": a1})
    assert forked.status_code == 201, forked.text
    copy = forked.json()
    assert copy["id"] != cid and copy["message_count"] == 2 and copy["title"].endswith("(fork)")
    path = _path(ada, copy["id"])
    original = _path(ada, cid)
    assert [(m["role"], m["content"]) for m in path] == [(m["role"], m["content"]) for m in original[:2]]
    assert {m["id"] for m in path}.isdisjoint(m["id"] for m in original)
    # the copy lives on its own: a message there leaves the original as it was
    send(ada, copy["id"], "More.")
    assert len(_path(ada, cid)) == 4 and len(_path(ada, copy["id"])) == 4


def test_several_models_answer_side_by_side(ada: Session) -> None:
    cid = _new(ada)
    received = send(ada, cid, "Say hi.", models=[SMOLLM, GEMMA])
    start = received[0].data
    ids = start["assistant_message_ids"]
    assert len(ids) == 2 and [m["model"] for m in start["assistant_messages"]] == [SMOLLM, GEMMA]
    done = {e.data["id"]: e.data for e in received if e.name == "done"}
    assert set(done) == set(ids) and all(d["status"] == "done" for d in done.values())
    assert {e.data["message_id"] for e in received if e.name == "delta"} <= set(ids)
    path = _path(ada, cid)
    assert path[-1]["id"] == ids[0] and path[-1]["siblings"] == ids
    # pick the second answer and go on from it
    ada.request("PUT", f"/api/v1/conversations/{cid}/leaf", json={"message_id": ids[1]})
    follow = send(ada, cid, "Thanks.")
    assert follow[-1].data["model"] == SMOLLM
    path = _path(ada, cid)
    assert path[1]["id"] == ids[1] and path[2]["parent_id"] == ids[1]
