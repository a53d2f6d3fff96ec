"""What a conversation's path carries besides the messages: my own feedback on each answer (read with
the path, not one request per answer), and the answers a send to several models wrote together,
beside the one on the path, until one of them is picked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from tests.platform.support import RunningPlatform


def test_the_path_carries_my_feedback_and_the_answers_written_beside(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    chat = service.create(ada_id, "m1")
    prepared = service.send(ada_id, chat.id, "Which is larger, 9.11 or 9.9?", models=["m1", "m2"])
    first, second = (answer.id for answer in prepared.answers)
    platform.platform.answers.finish(first, content="9.11", status="done")
    platform.platform.answers.finish(second, content="9.9", status="done")
    base = f"/api/v1/conversations/{chat.id}"

    def last() -> dict[str, Any]:
        response = ada.get(base)
        assert response.status_code == 200, response.text
        message: dict[str, Any] = response.json()["messages"][-1]
        return message

    shown = last()
    assert shown["id"] == first and shown["feedback"] is None
    assert [(m["id"], m["model"], m["content"]) for m in shown["beside"]] == [(second, "m2", "9.9")]
    assert shown["beside"][0]["siblings"] == [first, second] and shown["beside"][0]["beside"] == []
    assert ada.get(f"{base}/messages").json()["items"][-1]["beside"][0]["id"] == second

    # My feedback comes with the path (on the answers beside too); GET .../feedback still answers.
    ada.request("PUT", f"{base}/messages/{first}/feedback", json={"rating": "down", "reason": "wrong"})
    ada.request("PUT", f"{base}/messages/{second}/feedback", json={"rating": "up"})
    shown = last()
    assert (shown["feedback"]["rating"], shown["feedback"]["reason"]) == ("down", "wrong")
    assert shown["beside"][0]["feedback"]["rating"] == "up"
    assert ada.get(f"{base}/messages/{first}/feedback").json()["rating"] == "down"

    # A regenerated answer is a branch of its own, not beside the others; back to the first, the pair is.
    again = service.regenerate(ada_id, chat.id, first, None).answers[0].id
    platform.platform.answers.finish(again, content="9.9 is larger", status="done")
    shown = last()
    assert shown["id"] == again and shown["beside"] == [] and shown["siblings"] == [first, second, again]
    assert ada.request("PUT", f"{base}/leaf", json={"message_id": first}).status_code == 200
    assert [m["id"] for m in last()["beside"]] == [second]

    # Picking one (a preferred thumbs up) ends the side by side: the pick is a branch like the others.
    ada.request("PUT", f"{base}/messages/{second}/feedback", json={"rating": "up", "preferred": True})
    ada.request("PUT", f"{base}/leaf", json={"message_id": second})
    shown = last()
    assert shown["id"] == second and shown["beside"] == [] and shown["feedback"]["preferred"] is True


def test_reading_a_path_costs_the_same_queries_whatever_its_length(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    short, long = service.create(ada_id, "m1"), service.create(ada_id, "m1")
    for chat, turns in ((short, 1), (long, 12)):
        for turn in range(turns):
            answer = service.send(ada_id, chat.id, f"Question {turn}").answers[0].id
            platform.platform.answers.finish(answer, content=f"Answer {turn}", status="done")
            ada.request(
                "PUT", f"/api/v1/conversations/{chat.id}/messages/{answer}/feedback", json={"rating": "up"}
            )

    engine = service._sessions.kw["bind"]
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(str(args[2]))

    def queries(conversation_id: str) -> int:
        counted.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            detail = service.detail(ada_id, conversation_id)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert all(m.feedback is not None for m in detail.messages if m.role == "assistant")
        return len(counted)

    assert queries(long.id) == queries(short.id)
