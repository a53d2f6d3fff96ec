"""A model server that fails mid-conversation: the answer is stored failed with the reason, my message
kept, and the platform serves on; behind our gateway the answer names the node that wrote it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.gateway.support import start_built, wait_until
from tests.platform.conversations.support import send
from tests.platform.support import platform_settings, running
from tests.support import SMOLLM, linked_home, start_node


def test_a_failing_model_server_fails_the_answer_and_loses_nothing(home: Path, tmp_path: Path) -> None:
    node = start_node(linked_home(home, tmp_path / "node"))
    gateway = start_built(home=tmp_path / "gateway", nodes=[node.url])
    try:
        wait_until(lambda: SMOLLM in httpx.get(f"{gateway.url}/api/tags").text, 30, "the node's models")
        settings = platform_settings(
            tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", upstream_url=gateway.url
        )
        for platform in running(settings):
            platform.platform.models.ttl = 3600  # the model stays known: the failure comes while answering
            platform.register("ada@example.com")
            ada = platform.sign_in("ada@example.com")
            chat = ada.post(
                "/api/v1/conversations", json={"model": SMOLLM, "options": {"num_predict": 8}}
            ).json()
            served = send(ada, chat["id"], "Hello.")
            assert served[-1].data["usage"]["node"]  # the gateway said which node wrote it

            node.stop()
            failed = send(ada, chat["id"], "Are you there?")
            assert failed[-1].name == "failed" and "the model server answered" in failed[-1].data["detail"]
            path = ada.get(f"/api/v1/conversations/{chat['id']}").json()["messages"]
            assert [(m["role"], m["status"]) for m in path][-2:] == [
                ("user", "done"),
                ("assistant", "failed"),
            ]
            assert path[-2]["content"] == "Are you there?" and path[-1]["error"]
            assert ada.get("/api/v1/conversations").status_code == 200  # serving on
    finally:
        gateway.running.stop()
        node.stop()
