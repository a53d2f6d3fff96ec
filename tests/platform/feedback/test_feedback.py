"""Feedback on answers: given, changed, withdrawn; a preference among side-by-side answers; the admin's
list and JSON Lines export keep the exchange after the conversation is gone."""

from __future__ import annotations

import json

from tests.platform.support import RunningPlatform


def test_feedback_is_kept_with_its_exchange_for_the_admin(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    answers = platform.platform.answers
    chat = service.create(ada_id, "m1", system="Be brief.")
    prepared = service.send(ada_id, chat.id, "Which is larger, 9.11 or 9.9?", models=["m1", "m2"])
    first, second = (answer.id for answer in prepared.answers)
    answers.finish(first, content="9.11", status="done")
    answers.finish(second, content="9.9", status="done")
    base = f"/api/v1/conversations/{chat.id}/messages"

    down = ada.request("PUT", f"{base}/{first}/feedback", json={"rating": "down", "reason": "wrong"})
    assert down.status_code == 200 and down.json()["rating"] == "down"
    picked = ada.request(
        "PUT", f"{base}/{second}/feedback", json={"rating": "up", "preferred": True, "comment": "right"}
    )
    assert picked.status_code == 200 and picked.json()["preferred"] is True
    changed = ada.request(
        "PUT", f"{base}/{first}/feedback", json={"rating": "down", "comment": "9.9 is larger"}
    )
    assert changed.json()["id"] == down.json()["id"] and changed.json()["reason"] is None
    assert ada.get(f"{base}/{first}/feedback").json()["comment"] == "9.9 is larger"

    service.delete(ada_id, chat.id)
    listed = ada.get("/api/v1/admin/feedback").json()["items"]
    assert {item["message_id"] for item in listed} == {first, second}
    preferred = next(item for item in listed if item["preferred"])
    snapshot = preferred["snapshot"]
    assert snapshot["prompt"] == "Which is larger, 9.11 or 9.9?" and snapshot["answer"] == "9.9"
    assert snapshot["system"] == "Be brief." and snapshot["others"] == [
        {"id": first, "model": "m1", "answer": "9.11"}
    ]
    assert [
        item["rating"] for item in ada.get("/api/v1/admin/feedback", params={"rating": "up"}).json()["items"]
    ] == ["up"]
    export = ada.get("/api/v1/admin/feedback/export")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) == 2 and {line["user_id"] for line in lines} == {ada_id}


def test_feedback_refuses_bad_input_other_users_and_non_admins(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    bob_id = sqlite_platform.register("bob@example.com")["id"]
    ada = sqlite_platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = sqlite_platform.sign_in("bob@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = sqlite_platform.platform.conversations
    answers = sqlite_platform.platform.answers
    chat = service.create(ada_id, "m")
    prepared = service.send(ada_id, chat.id, "hi")
    answer, mine = prepared.answers[0].id, prepared.user_message.id if prepared.user_message else ""
    answers.finish(answer, content="hello", status="done")
    base = f"/api/v1/conversations/{chat.id}/messages"
    assert ada.request("PUT", f"{base}/{answer}/feedback", json={"rating": "meh"}).status_code == 422
    assert ada.request("PUT", f"{base}/{mine}/feedback", json={"rating": "up"}).status_code == 404
    assert ada.get(f"{base}/{answer}/feedback").status_code == 404  # none given yet
    assert bob.request("PUT", f"{base}/{answer}/feedback", json={"rating": "down"}).status_code == 404
    assert bob.get("/api/v1/admin/feedback").status_code == 403
    assert bob.get("/api/v1/admin/feedback/export").status_code == 403
    assert ada.get("/api/v1/admin/feedback").json()["items"] == []
