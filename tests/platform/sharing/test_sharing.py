"""Share links: a snapshot opened by link by a signed-in user, later messages not in it, revoked at once."""

from __future__ import annotations

from tests.platform.support import RunningPlatform


def test_a_shared_snapshot_opens_until_revoked(platform: RunningPlatform) -> None:
    platform.register("ada@example.com", name="Ada")
    bob_id = platform.register("bob@example.com")["id"]
    ada = platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = platform.sign_in("bob@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    service = platform.platform.conversations
    answers = platform.platform.answers
    chat = service.create(ada_id, "m", title="Recipe")
    answer = service.send(ada_id, chat.id, "How do I make bread?").answers[0].id
    answers.finish(answer, content="Flour, water, salt, yeast.", status="done")

    created = ada.post(f"/api/v1/conversations/{chat.id}/shares")
    assert created.status_code == 201, created.text
    share = created.json()
    assert share["url"].endswith(f"/s/{share['token']}") and share["message_count"] == 2
    later = service.send(ada_id, chat.id, "And cake?").answers[0].id
    answers.finish(later, content="Eggs.", status="done")

    opened = bob.get(f"/api/v1/shared/{share['token']}")
    assert opened.status_code == 200
    body = opened.json()
    assert body["title"] == "Recipe" and body["shared_by"] == "Ada"
    assert [m["content"] for m in body["messages"]] == ["How do I make bread?", "Flour, water, salt, yeast."]
    assert platform.client().get(f"/api/v1/shared/{share['token']}").status_code == 401
    assert bob.get(f"/api/v1/conversations/{chat.id}").status_code == 404  # the link opens the snapshot only
    assert bob.request("DELETE", f"/api/v1/shares/{share['id']}").status_code == 404
    assert bob.get(f"/api/v1/conversations/{chat.id}/shares").status_code == 404

    listed = ada.get(f"/api/v1/conversations/{chat.id}/shares").json()["items"]
    assert [item["id"] for item in listed] == [share["id"]] and "token" not in listed[0]
    assert ada.request("DELETE", f"/api/v1/shares/{share['id']}").status_code == 204
    assert bob.get(f"/api/v1/shared/{share['token']}").status_code == 404
    assert ada.get(f"/api/v1/conversations/{chat.id}/shares").json()["items"][0]["revoked_at"] is not None
    assert bob.get("/api/v1/shared/not-a-token").status_code == 404
