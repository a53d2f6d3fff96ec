"""The limits applied on ``/v1``: requests per minute and at once answered ``429`` with
``Retry-After`` in OpenAI's error shape, hidden models ``404`` as unknown ones and absent from both
model lists, and tokens per day counted from the real usage of a real node's answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.gateway.support import RunningStandIn, start_standin, wait_until
from tests.platform.limits.support import People, chat, people
from tests.platform.support import RunningPlatform, platform_settings, running
from tests.support import GEMMA, SMOLLM, RunningNode

STANDIN = "standin:1"


@pytest.fixture
def standin() -> Iterator[RunningStandIn]:
    started = start_standin(model=STANDIN)
    yield started
    started.stop()


def _on(upstream: str, database_url: str, tmp_path: Path) -> Iterator[RunningPlatform]:
    return running(platform_settings(tmp_path / "home", database_url, upstream_url=upstream))


def _set_role(who: People, **limits: object) -> None:
    answer = who.admin.request("PUT", "/api/v1/admin/limits", json={"user": limits})
    assert answer.status_code == 200, answer.text


def _usage(who: People) -> dict[str, int]:
    usage: dict[str, int] = who.user.get("/api/v1/users/me/limits").json()["usage"]
    return usage


def test_requests_per_minute_answer_429_with_retry_after(
    standin: RunningStandIn, database_url: str, tmp_path: Path
) -> None:
    for started in _on(standin.url, database_url, tmp_path):
        who = people(started)
        _set_role(who, requests_per_minute=2)
        for _ in range(2):
            assert chat(started, who.key, STANDIN).status_code == 200
        refused = chat(started, who.key, STANDIN)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert "requests_per_minute: 2" in error["message"]
        assert _usage(who)["requests_last_minute"] == 2
        assert standin.standin.model_hits() == 2  # the refused one never went upstream

        client = openai.OpenAI(base_url=f"{started.url}/v1", api_key=who.key, max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=STANDIN, messages=[{"role": "user", "content": "hi"}])

        # The administrator's role has no limit; a user's own override applies at once
        admin_key = who.admin.post("/api/v1/users/me/api-keys", json={"name": "a"}).json()["key"]
        assert all(chat(started, admin_key, STANDIN).status_code == 200 for _ in range(3))
        override = {"requests_per_minute": None}
        who.admin.request("PUT", f"/api/v1/admin/users/{who.user_id}/limits", json=override)
        assert chat(started, who.key, STANDIN).status_code == 200


def test_concurrent_requests_answer_429_while_one_runs(database_url: str, tmp_path: Path) -> None:
    stalling = start_standin(model=STANDIN, mode="stall")
    try:
        for started in _on(stalling.url, database_url, tmp_path):
            who = people(started)
            _set_role(who, concurrent_requests=1)
            body = {"model": STANDIN, "messages": [{"role": "user", "content": "hi"}], "stream": True}
            headers = {"Authorization": f"Bearer {who.key}"}
            with started.client() as http:
                with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as held:
                    assert held.status_code == 200
                    lines = held.iter_lines()  # kept: a dropped iterator closes the stream
                    assert next(lines).startswith("data: ")
                    assert _usage(who)["concurrent_requests"] == 1
                    refused = chat(started, who.key, STANDIN)
                    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
                    assert "concurrent_requests: 1" in refused.json()["error"]["message"]
                # the client left: its slot is free again
                wait_until(lambda them=who: _usage(them)["concurrent_requests"] == 0, message="slot freed")
                with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as again:
                    assert again.status_code == 200
            assert _usage(who)["requests_last_minute"] == 2
    finally:
        stalling.stop()


def _names(answer: object) -> list[str]:
    assert isinstance(answer, dict)
    return [item["name"] for item in answer["items"]]


def test_hidden_models_are_absent_and_404_like_unknown_ones(
    node: RunningNode, database_url: str, tmp_path: Path
) -> None:
    for started in _on(node.url, database_url, tmp_path):
        who = people(started)
        assert {SMOLLM, GEMMA} <= set(_names(who.user.get("/api/v1/models").json()))
        _set_role(who, models=["smollm2:*"])

        assert _names(who.user.get("/api/v1/models").json()) == [SMOLLM]
        assert {SMOLLM, GEMMA} <= set(_names(who.admin.get("/api/v1/models").json()))
        client = openai.OpenAI(base_url=f"{started.url}/v1", api_key=who.key, max_retries=0)
        assert [model.id for model in client.models.list()] == [SMOLLM]
        with pytest.raises(openai.NotFoundError) as hidden:
            client.models.retrieve(GEMMA)
        with pytest.raises(openai.NotFoundError) as unknown:
            client.models.retrieve("no-such-model:1b")
        assert hidden.value.body == {**unknown.value.body, "message": f"model '{GEMMA}' not found"}  # type: ignore[dict-item]

        refused = chat(started, who.key, GEMMA)
        assert refused.status_code == 404
        assert refused.json() == {
            "error": {
                "message": f"model '{GEMMA}' not found",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        }

        # An override's patterns replace the role's; [] hides everything
        path = f"/api/v1/admin/users/{who.user_id}/limits"
        who.admin.request("PUT", path, json={"models": ["gemma3*"]})
        assert _names(who.user.get("/api/v1/models").json()) == [GEMMA]
        assert chat(started, who.key, SMOLLM).status_code == 404
        who.admin.request("PUT", path, json={"models": []})
        assert who.user.get("/api/v1/models").json() == {"items": [], "next_cursor": None}
        assert client.models.list().data == []


def test_tokens_per_day_count_the_real_usage_of_each_answer(node: RunningNode, tmp_path: Path) -> None:
    for started in _on(node.url, f"sqlite:///{tmp_path}/p.sqlite3", tmp_path):
        who = people(started)
        path = f"/api/v1/admin/users/{who.user_id}/limits"
        who.admin.request("PUT", path, json={"tokens_per_day": 5})
        greedy = {"max_tokens": 4, "temperature": 0, "seed": 42}

        whole = chat(started, who.key, SMOLLM, **greedy)
        assert whole.status_code == 200, whole.text
        used = whole.json()["usage"]["total_tokens"]
        assert used > 5
        assert _usage(who)["tokens_today"] == used

        refused = chat(started, who.key, SMOLLM, **greedy)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
        midnight = 86_400 - time.time() % 86_400
        assert abs(int(refused.headers["retry-after"]) - midnight) < 5

        # A stream counts too: the platform asks for its usage and keeps that chunk from a client
        # that did not ask for it; one that asked gets it.
        who.admin.request("PUT", path, json={"tokens_per_day": 1_000_000})
        streamed = chat(started, who.key, SMOLLM, stream=True, **greedy)
        assert streamed.status_code == 200
        chunks = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
        assert chunks and all("usage" not in chunk for chunk in chunks)
        assert streamed.text.rstrip().endswith("data: [DONE]")
        assert _usage(who)["tokens_today"] == 2 * used

        asked = chat(started, who.key, SMOLLM, stream=True, stream_options={"include_usage": True}, **greedy)
        last = [json.loads(line[6:]) for line in asked.text.splitlines() if line.startswith("data: {")][-1]
        assert last["choices"] == [] and last["usage"]["total_tokens"] == used
        assert _usage(who)["tokens_today"] == 3 * used
        assert _usage(who)["requests_last_minute"] == 3  # the refused one is not counted
