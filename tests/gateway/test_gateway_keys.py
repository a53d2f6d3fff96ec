"""Keys as users expect them, on the gateway ``avocado gateway`` builds: who gets in, which models a key
names, what a stream cut short costs, and the ``x-ratelimit-*`` headers OpenAI's clients read."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.gateway.support import Built, RunningStandIn, start_built, start_standin, wait_until
from tests.support import GREEDY, SMOLLM, RunningNode

MASTER = "master-" + secrets.token_hex(16)


def create_key(gateway: Built, **fields: Any) -> str:
    with gateway.client(MASTER) as http:
        response = http.post("/api/avocado/keys", json={"name": "test", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@pytest.fixture
def standin() -> Iterator[RunningStandIn]:
    running = start_standin(model="standin:latest", lines=20)
    yield running
    running.stop()


def chat(model: str = "standin:latest") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}]}


def test_a_master_key_makes_keys_required_unless_require_key_is_false(
    standin: RunningStandIn, tmp_path: Path
) -> None:
    strict = start_built(home=tmp_path / "strict", nodes=[standin.url], master_key=MASTER)
    try:
        key = create_key(strict, rpm=100)
        with strict.client() as anonymous, strict.client("unused") as unknown, strict.client(key) as known:
            assert anonymous.post("/v1/chat/completions", json=chat()).status_code == 401
            refused = unknown.post("/v1/chat/completions", json=chat())
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
            assert known.post("/v1/chat/completions", json=chat()).status_code == 200
    finally:
        strict.stop()

    open_door = start_built(home=tmp_path / "open", nodes=[standin.url], master_key=MASTER, require_key=False)
    try:
        key = create_key(open_door, rpm=1)
        # The README's example: every OpenAI SDK client sends a key, and an open gateway lets it in.
        client = openai.OpenAI(base_url=f"{open_door.url}/v1", api_key="unused")
        for _ in range(3):
            stream = client.chat.completions.create(stream=True, **chat())
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "w" * 20
        # A key it knows keeps its limits.
        limited = openai.OpenAI(base_url=f"{open_door.url}/v1", api_key=key, max_retries=0)
        limited.chat.completions.create(**chat())
        with pytest.raises(openai.RateLimitError):
            limited.chat.completions.create(**chat())
    finally:
        open_door.stop()


def test_allowed_models_match_however_the_name_is_written(standin: RunningStandIn, tmp_path: Path) -> None:
    gateway = start_built(home=tmp_path, nodes=[standin.url], master_key=MASTER)
    try:
        short, full = create_key(gateway, models=["standin"]), create_key(gateway, models=["standin:latest"])
        for key in (short, full):
            client = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})
            assert [m.model for m in client.list().models] == ["standin:latest"]
            for name in ("standin", "standin:latest", "Standin:Latest"):
                assert client.generate(name, "Hi", stream=False).response == "ok"
    finally:
        gateway.stop()


def _counted(gateway: Built, key_name: str) -> float:
    """Requests of ``key_name`` the gateway has finished with (from its own /metrics)."""
    text = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {MASTER}"}).text
    pattern = rf'avocado_gateway_requests_total\{{[^}}]*key="{key_name}"[^}}]*\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, text))


@pytest.mark.parametrize("path", ["/api/generate", "/v1/completions"])
def test_a_stream_cut_short_by_its_client_still_counts_its_tokens(
    node_a: RunningNode, tmp_path: Path, path: str
) -> None:
    gateway = start_built(home=tmp_path, nodes=[node_a.url], master_key=MASTER)
    try:
        with gateway.client(MASTER) as http:
            created = http.post("/api/avocado/keys", json={"name": "aborter", "tpm": 8}).json()
        body: dict[str, Any] = {"model": SMOLLM, "prompt": "Count from 1 to 50: 1, 2, 3,", "stream": True}
        if path == "/api/generate":
            body |= {"raw": True, "options": {**GREEDY, "num_predict": 64}}
        else:
            body |= {"max_tokens": 64, "temperature": 0}
        with (
            gateway.client(created["key"]) as http,
            http.stream("POST", path, json=body) as response,
        ):
            assert response.status_code == 200
            seen = 0
            for line in response.iter_lines():
                seen += bool(line.strip())
                if seen == 10:
                    break  # the client leaves mid-stream, before the counts at the end
        assert seen == 10  # cut short indeed: the answer was longer
        wait_until(lambda: _counted(gateway, "aborter") == 1, message="the cut request is finished")
        with gateway.client(created["key"]) as http:
            refused = http.post(path, json={**body, "stream": False})
        assert refused.status_code == 429, refused.text
        assert "token limit exceeded: 8 tokens" in refused.text
    finally:
        gateway.stop()


def test_limited_requests_carry_openais_rate_limit_headers(standin: RunningStandIn, tmp_path: Path) -> None:
    gateway = start_built(home=tmp_path, nodes=[standin.url], master_key=MASTER)
    try:
        key = create_key(gateway, rpm=2, tpm=1000)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        first = client.chat.completions.with_raw_response.create(**chat())
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert first.headers["x-ratelimit-limit-tokens"] == "1000"
        assert first.headers["x-ratelimit-remaining-tokens"] == "1000"
        assert first.headers["x-ratelimit-reset-tokens"] == "0s"
        first.parse()  # read to its end: the stand-in's usage (4 + 6 tokens) is counted

        wait_until(lambda: _counted(gateway, "test") == 1, message="the first request is finished")
        second = client.chat.completions.with_raw_response.create(**chat())
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        assert second.headers["x-ratelimit-remaining-tokens"] == "990"
        assert 50 < float(second.headers["x-ratelimit-reset-tokens"].removesuffix("s")) <= 60
        second.parse()

        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**chat())
        headers = refused.value.response.headers
        assert headers["x-ratelimit-remaining-requests"] == "0" and int(headers["retry-after"]) >= 1
        assert 50 < float(headers["x-ratelimit-reset-requests"].removesuffix("s")) <= 60

        # Listings are admitted like requests: they carry the headers too; keys without limits do not.
        with gateway.client(key) as http:
            assert http.get("/v1/models").headers["x-ratelimit-limit-requests"] == "2"
        with gateway.client(create_key(gateway)) as http:
            answer = http.post("/v1/chat/completions", json=chat())
            assert answer.status_code == 200 and "x-ratelimit-limit-requests" not in answer.headers
    finally:
        gateway.stop()


def test_usage_is_attributed_to_the_user_a_keyed_caller_names(
    standin: RunningStandIn, tmp_path: Path
) -> None:
    gateway = start_built(home=tmp_path, nodes=[standin.url], master_key=MASTER, require_key=False)
    try:
        key = create_key(gateway)
        with gateway.client(MASTER) as http:
            key_id = http.get("/api/avocado/keys").json()["keys"][0]["id"]
        calls = [
            (MASTER, "ada"),  # the master key, for ada
            (key, "bob"),  # a service key, for bob
            (key, "bob"),
            (None, "eve"),  # anonymous: it could name anyone, so it names no one
            (key, "x" * 65),  # not a plausible id: counted for the key, not as a user
        ]
        for credential, user in calls:
            with gateway.client(credential) as http:
                answer = http.post("/v1/chat/completions", json=chat(), headers={"X-Avocado-User": user})
            assert answer.status_code == 200, answer.text

        def usage() -> dict[tuple[str, str], dict[str, Any]]:
            with gateway.client(MASTER) as http:
                rows = http.get("/api/avocado/keys/users").json()["usage"]
            return {(row["key_id"], row["user"]): row for row in rows}

        def key_requests() -> int:
            with gateway.client(MASTER) as http:
                return int(http.get(f"/api/avocado/keys/{key_id}").json()["requests"])

        wait_until(lambda: key_requests() == 3 and len(usage()) == 2, timeout=15, message="usage flushed")
        rows = usage()
        assert set(rows) == {("master", "ada"), (key_id, "bob")}
        assert rows[(key_id, "bob")]["tokens_in"] > 0 and rows[(key_id, "bob")]["tokens_out"] > 0
        with gateway.client(MASTER) as http:
            only_ada = http.get("/api/avocado/keys/users", params={"user": "ada"}).json()["usage"]
            assert [row["key_id"] for row in only_ada] == ["master"]
        assert rows[(key_id, "bob")]["requests"] == 2
        with gateway.client(key) as http:
            assert http.get("/api/avocado/keys/users").status_code == 401  # the master key's only
    finally:
        gateway.stop()
