"""Managing conversations and folders: pages, pins, archive, folders, tags, options; bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from avocado.db.engine import make_engine
from tests.platform.conversations.support import send
from tests.platform.support import RunningPlatform, Session
from tests.support import SMOLLM


def _new(session: Session, **fields: Any) -> dict[str, Any]:
    response = session.post("/api/v1/conversations", json={"model": SMOLLM, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _all(session: Session, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = session.get("/api/v1/conversations", params=query).json()
        items.extend(page["items"])
        if (cursor := page["next_cursor"]) is None:
            return items


def test_pages_pins_archive_and_rename(chat_platform: RunningPlatform) -> None:
    chat_platform.register("ada@example.com")
    ada = chat_platform.sign_in("ada@example.com")
    made = [_new(ada, title=f"chat {n}") for n in range(8)]
    listed = _all(ada)
    assert [c["id"] for c in listed] == [c["id"] for c in reversed(made)]  # newest first, no repeats

    pinned = ada.patch(f"/api/v1/conversations/{made[2]['id']}", json={"pinned": True}).json()
    assert pinned["pinned"] is True
    ada.patch(f"/api/v1/conversations/{made[5]['id']}", json={"archived": True})
    listed = _all(ada)
    assert listed[0]["id"] == made[2]["id"] and len(listed) == 7
    assert [c["id"] for c in _all(ada, archived=True)] == [made[5]["id"]]

    renamed = ada.patch(
        f"/api/v1/conversations/{made[0]['id']}",
        json={"title": "Renamed", "system": "Be brief.", "options": {"temperature": 0.1, "num_ctx": 1024}},
    ).json()
    assert renamed["title"] == "Renamed" and renamed["system"] == "Be brief."
    assert renamed["options"] == {"temperature": 0.1, "num_ctx": 1024}
    cleared = ada.patch(f"/api/v1/conversations/{made[0]['id']}", json={"system": None}).json()
    assert cleared["system"] is None and cleared["title"] == "Renamed"

    assert ada.delete(f"/api/v1/conversations/{made[1]['id']}").status_code == 204
    assert ada.get(f"/api/v1/conversations/{made[1]['id']}").status_code == 404
    assert len(_all(ada)) == 6


def test_archive_everything_older_than_n_days(sqlite_chat: RunningPlatform, ada: Session) -> None:
    old, recent = _new(ada), _new(ada)
    service = sqlite_chat.platform.conversations
    real_now = service.now
    service.now = lambda: real_now() - timedelta(days=40)
    try:
        service.update(_user_id(ada), old["id"], {"title": "old one"})  # touched 40 days ago
    finally:
        service.now = real_now
    answer = ada.post("/api/v1/conversations/archive", json={"older_than_days": 30})
    assert answer.status_code == 200 and answer.json() == {"archived": 1}
    assert [c["id"] for c in _all(ada, archived=True)] == [old["id"]]
    assert [c["id"] for c in _all(ada)] == [recent["id"]]


def _user_id(session: Session) -> str:
    user_id: str = session.get("/api/v1/users/me").json()["id"]
    return user_id


def test_folders_nest_and_hold_conversations(ada: Session) -> None:
    work = ada.post("/api/v1/folders", json={"name": "Work"}).json()
    inner = ada.post("/api/v1/folders", json={"name": "Projects", "parent_id": work["id"]}).json()
    assert inner["parent_id"] == work["id"]
    chat = _new(ada, folder_id=inner["id"])
    _new(ada)
    assert [c["id"] for c in _all(ada, folder_id=inner["id"])] == [chat["id"]]
    cycle = ada.patch(f"/api/v1/folders/{work['id']}", json={"parent_id": inner["id"]})
    assert cycle.status_code == 409
    names = [f["name"] for f in ada.get("/api/v1/folders").json()["items"]]
    assert names == ["Projects", "Work"]
    moved = ada.patch(f"/api/v1/conversations/{chat['id']}", json={"folder_id": None}).json()
    assert moved["folder_id"] is None
    ada.patch(f"/api/v1/conversations/{chat['id']}", json={"folder_id": inner["id"]})
    assert ada.delete(f"/api/v1/folders/{work['id']}").status_code == 204
    assert ada.get("/api/v1/folders").json()["items"] == []  # the inner one went with it
    assert ada.get(f"/api/v1/conversations/{chat['id']}").json()["folder_id"] is None  # the chat stayed


def test_tags_filter_the_list(ada: Session) -> None:
    first, second = _new(ada), _new(ada)
    tagged = ada.patch(f"/api/v1/conversations/{first['id']}", json={"tags": ["Work", "ideas", "work"]})
    assert tagged.json()["tags"] == ["ideas", "work"]
    ada.patch(f"/api/v1/conversations/{second['id']}", json={"tags": ["ideas"]})
    assert [c["id"] for c in _all(ada, tag="work")] == [first["id"]]
    assert len(_all(ada, tag="ideas")) == 2


def test_bad_input_is_refused_and_nothing_is_stored(ada: Session) -> None:
    unknown = ada.post("/api/v1/conversations", json={"model": "no-such-model:1b"})
    assert unknown.status_code == 422 and "no-such-model:1b" in unknown.json()["detail"]
    bad_options = ada.post("/api/v1/conversations", json={"model": SMOLLM, "options": {"temperature": 9}})
    assert bad_options.status_code == 422 and "options.temperature" in bad_options.json()["detail"]
    extra = ada.post("/api/v1/conversations", json={"model": SMOLLM, "colour": "red"})
    assert extra.status_code == 422
    chat = _new(ada)
    base = f"/api/v1/conversations/{chat['id']}/messages"
    too_long = ada.post(base, json={"content": "x" * 200_001})
    assert too_long.status_code == 422 and "content" in too_long.json()["detail"]
    empty = ada.post(base, json={"content": ""})
    assert empty.status_code == 422
    five = ada.post(base, json={"content": "hi", "models": [SMOLLM] * 5})
    assert five.status_code == 422 and "models" in five.json()["detail"]
    wrong_model = ada.post(base, json={"content": "hi", "models": ["nope:1b"]})
    assert wrong_model.status_code == 422
    malformed = ada.http.post(
        base, content=b"{not json", headers={**ada.auth, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    no_parent = ada.post(base, json={"content": "hi", "parent_id": "00000000-0000-0000-0000-000000000000"})
    assert no_parent.status_code == 404
    detail = ada.get(f"/api/v1/conversations/{chat['id']}").json()
    assert detail["message_count"] == 0 and detail["messages"] == []  # nothing stored

    received = send(ada, chat["id"], "Hi.")
    mid = received[0].data["assistant_message_ids"][0]
    uid = received[0].data["user_message_id"]
    finished = ada.post(f"{base}/{mid}/stop")
    assert finished.status_code == 409 and "done" in finished.json()["detail"]
    not_an_answer = ada.post(f"{base}/{uid}/stop")
    assert not_an_answer.status_code == 404
    regenerate_mine = ada.post(f"{base}/{uid}/regenerate", json={})
    assert regenerate_mine.status_code == 404
    bad_cursor = ada.get("/api/v1/conversations", params={"cursor": "bogus"})
    assert bad_cursor.status_code == 422


def test_another_user_sees_nothing_of_mine(sqlite_chat: RunningPlatform, ada: Session) -> None:
    bob_id = sqlite_chat.register("bob@example.com")["id"]
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})  # ada, the first, is admin
    bob = sqlite_chat.sign_in("bob@example.com")
    chat = _new(ada)
    received = send(ada, chat["id"], "Hi.")
    mid = received[0].data["assistant_message_ids"][0]
    folder = ada.post("/api/v1/folders", json={"name": "Mine"}).json()
    base = f"/api/v1/conversations/{chat['id']}"
    for method, path, body in [
        ("GET", base, None),
        ("PATCH", base, {"title": "stolen"}),
        ("DELETE", base, None),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages", {"content": "hi"}),
        ("POST", f"{base}/fork", {"message_id": mid}),
        ("PUT", f"{base}/leaf", {"message_id": mid}),
        ("GET", f"{base}/messages/{mid}/stream", None),
        ("POST", f"{base}/messages/{mid}/stop", None),
        ("POST", f"{base}/messages/{mid}/regenerate", {}),
        ("PATCH", f"/api/v1/folders/{folder['id']}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/folders/{folder['id']}", None),
    ]:
        answer = bob.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.status_code)
        anonymous = sqlite_chat.client().request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    moved = bob.post("/api/v1/conversations", json={"model": SMOLLM, "folder_id": folder["id"]})
    assert moved.status_code == 404
    assert bob.get("/api/v1/conversations").json()["items"] == []
    assert bob.get("/api/v1/folders").json()["items"] == []
    assert ada.get(base).json()["title"] != "stolen" and len(ada.get(base).json()["messages"]) == 2


def test_an_account_no_longer_active_cannot_send(chat_platform: RunningPlatform) -> None:
    """The send route checks the user's row in its own worker-thread trip: the same refusal as every
    route's, even for a token whose session was not revoked."""
    chat_platform.register("ada@example.com")
    ada = chat_platform.sign_in("ada@example.com")
    ada_id = ada.get("/api/v1/users/me").json()["id"]
    chat = _new(ada)
    url = chat_platform.settings.database_url
    assert url is not None
    engine = make_engine(url.get_secret_value())
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET status = 'pending'"))
    engine.dispose()
    refused = ada.post(f"/api/v1/conversations/{chat['id']}/messages", json={"content": "hello"})
    assert refused.status_code == 401 and "may not sign in" in refused.json()["detail"]
    assert ada.get("/api/v1/conversations").status_code == 401
    assert chat_platform.platform.conversations.detail(ada_id, chat["id"]).messages == []  # nothing stored
