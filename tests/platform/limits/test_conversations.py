"""Conversations offer only the models a user may see: a hidden one is refused as an unknown one,
before anything is stored or generated."""

from __future__ import annotations

from pathlib import Path

from tests.platform.limits.support import people
from tests.platform.support import platform_settings, running
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
