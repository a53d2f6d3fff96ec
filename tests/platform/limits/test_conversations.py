"""Conversations offer only the models a user may see: a hidden one is refused as an unknown one,
before anything is stored or generated."""

from __future__ import annotations

from pathlib import Path

from tests.platform.conversations.support import read_all, send
from tests.platform.limits.support import people
from tests.platform.support import Session, platform_settings, running
from tests.support import GEMMA, SMOLLM, RunningNode


def test_a_hidden_model_is_an_unknown_one_in_conversations(node: RunningNode, tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", upstream_url=node.url)
    for started in running(settings):
        who = people(started)
        assert who.user.post("/api/v1/conversations", json={"model": GEMMA}).status_code == 201
        who.admin.request("PUT", "/api/v1/admin/limits", json={"user": {"models": ["smollm2:*"]}})

        hidden = who.user.post("/api/v1/conversations", json={"model": GEMMA})
        unknown = who.user.post("/api/v1/conversations", json={"model": "no-such-model:1b"})
        assert hidden.status_code == unknown.status_code == 422
        assert hidden.json()["detail"] == unknown.json()["detail"].replace("no-such-model:1b", GEMMA)
        conversation = who.user.post("/api/v1/conversations", json={"model": SMOLLM}).json()
        sent = who.user.post(
            f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "hi", "models": [GEMMA]}
        )
        assert sent.status_code == 422 and GEMMA in sent.json()["detail"]
        renamed = who.user.patch(f"/api/v1/conversations/{conversation['id']}", json={"model": GEMMA})
        assert renamed.status_code == 422
        assert who.admin.post("/api/v1/conversations", json={"model": GEMMA}).status_code == 201
        listed = who.user.get("/api/v1/conversations").json()["items"]
        assert sorted(item["model"] for item in listed) == sorted([GEMMA, SMOLLM])  # nothing more stored


SHORT = {"num_predict": 4, "temperature": 0, "seed": 42}


def _usage(session: Session) -> dict[str, int]:
    usage: dict[str, int] = session.get("/api/v1/users/me/limits").json()["usage"]
    return usage


def test_answers_in_conversations_count_against_the_limits(node: RunningNode, tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", upstream_url=node.url)
    for started in running(settings):
        who = people(started)
        path = f"/api/v1/admin/users/{who.user_id}/limits"
        who.admin.request("PUT", path, json={"requests_per_minute": 2})
        conversation = who.user.post("/api/v1/conversations", json={"model": SMOLLM, "options": SHORT}).json()
        received = send(who.user, conversation["id"], "Say hello.")
        usage = received[-1].data["usage"]
        assert received[-1].name == "done"
        used = usage["prompt_tokens"] + usage["completion_tokens"]
        assert _usage(who.user)["tokens_today"] == used and _usage(who.user)["concurrent_requests"] == 0

        turns = [{"role": "user", "content": "Say hello."}]
        with who.user.http.stream(
            "POST",
            "/api/v1/temporary-chat",
            json={"model": SMOLLM, "messages": turns, "options": SHORT},
            headers=who.user.auth,
        ) as response:
            temporary = read_all(response)
        assert temporary[-1].name == "done"
        assert _usage(who.user)["tokens_today"] > used

        stored = who.user.get(f"/api/v1/conversations/{conversation['id']}").json()
        refused = who.user.post(
            f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "Again."}
        )
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "requests_per_minute: 2" in refused.json()["detail"]
        assert who.user.get(f"/api/v1/conversations/{conversation['id']}").json() == stored  # nothing stored
        answer_id = received[0].data["assistant_message_ids"][0]
        again = who.user.post(f"/api/v1/conversations/{conversation['id']}/messages/{answer_id}/regenerate")
        assert again.status_code == 429
        temporary_refused = who.user.post(
            "/api/v1/temporary-chat", json={"model": SMOLLM, "messages": turns, "options": SHORT}
        )
        assert temporary_refused.status_code == 429
