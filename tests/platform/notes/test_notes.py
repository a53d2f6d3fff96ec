"""Notes: standalone or attached, paged, searchable, kept when their conversation goes; mine only."""

from __future__ import annotations

from tests.platform.support import RunningPlatform


def test_notes_live_with_or_without_a_conversation_and_are_found(platform: RunningPlatform) -> None:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    chat = platform.platform.conversations.create(ada_id, "m", title="Trip")
    attached = ada.post(
        "/api/v1/notes",
        json={"title": "Packing", "content": "- passport\n- **sunscreen**", "conversation_id": chat.id},
    )
    assert attached.status_code == 201, attached.text
    alone = ada.post("/api/v1/notes", json={"title": "Ideas", "content": "a lighthouse keeper story"}).json()
    for n in range(3):
        ada.post("/api/v1/notes", json={"title": f"note {n}"})

    mine = ada.get("/api/v1/notes", params={"conversation_id": chat.id}).json()["items"]
    assert [note["title"] for note in mine] == ["Packing"]
    first = ada.get("/api/v1/notes", params={"limit": 3}).json()
    second = ada.get("/api/v1/notes", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 3 and len(second["items"]) == 2 and second["next_cursor"] is None

    hits = ada.get("/api/v1/search", params={"q": "sunscreen"}).json()["items"]
    assert [(h["kind"], h["note_id"], h["conversation_id"]) for h in hits] == [
        ("note", attached.json()["id"], chat.id)
    ]
    changed = ada.patch(f"/api/v1/notes/{alone['id']}", json={"content": "a lighthouse on the moon"}).json()
    assert changed["content"] == "a lighthouse on the moon" and changed["title"] == "Ideas"
    assert ada.get("/api/v1/search", params={"q": "moon"}).json()["items"][0]["note_id"] == alone["id"]
    assert ada.get("/api/v1/search", params={"q": "keeper"}).json()["items"] == []

    platform.platform.conversations.delete(ada_id, chat.id)
    kept = ada.get(f"/api/v1/notes/{attached.json()['id']}").json()
    assert kept["conversation_id"] is None and kept["title"] == "Packing"
    assert ada.delete(f"/api/v1/notes/{alone['id']}").status_code == 204
    assert ada.get(f"/api/v1/notes/{alone['id']}").status_code == 404
    assert ada.get("/api/v1/search", params={"q": "moon"}).json()["items"] == []


def test_notes_refuse_bad_input_and_other_users(sqlite_platform: RunningPlatform) -> None:
    sqlite_platform.register("ada@example.com")
    bob_id = sqlite_platform.register("bob@example.com")["id"]
    ada = sqlite_platform.sign_in("ada@example.com")
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    bob = sqlite_platform.sign_in("bob@example.com")
    note = ada.post("/api/v1/notes", json={"title": "Mine"}).json()
    assert ada.post("/api/v1/notes", json={"title": ""}).status_code == 422
    assert ada.post("/api/v1/notes", json={"title": "x", "content": "y" * 100_001}).status_code == 422
    assert ada.post("/api/v1/notes", json={"title": "x", "conversation_id": "nope"}).status_code == 404
    for method, body in (("GET", None), ("PATCH", {"title": "stolen"}), ("DELETE", None)):
        assert bob.request(method, f"/api/v1/notes/{note['id']}", json=body).status_code == 404
    assert bob.get("/api/v1/notes").json()["items"] == []
    assert ada.get(f"/api/v1/notes/{note['id']}").json()["title"] == "Mine"
