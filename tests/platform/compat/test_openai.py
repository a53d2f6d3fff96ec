"""The official ``openai`` client, unchanged, against the platform's ``/v1`` with a personal API key:
models, a chat completion and a streamed one, answered by a real node directly and through a real
gateway (which needs the platform's service credential)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.gateway.support import Built, start_built, start_standin, wait_until
from tests.platform.support import RunningPlatform, platform_settings, running
from tests.support import SMOLLM, RunningNode

MASTER = "platform-test-master-key-0123456789"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


def _platform(tmp_path: Path, upstream: str, key: str | None = None) -> Iterator[RunningPlatform]:
    settings = platform_settings(
        tmp_path / "home", f"sqlite:///{tmp_path}/p.sqlite3", upstream_url=upstream, upstream_key=key
    )
    return running(settings)


def _client(platform: RunningPlatform, email: str = "ada@example.com") -> openai.OpenAI:
    platform.register(email)
    session = platform.sign_in(email)
    key = session.post("/api/v1/users/me/api-keys", json={"name": "script"}).json()["key"]
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def gateway(node: RunningNode, tmp_path: Path) -> Iterator[Built]:
    built = start_built(home=tmp_path / "gateway", nodes=[node.url], master_key=MASTER, require_key=True)
    yield built
    built.running.stop()


def _exercise(client: openai.OpenAI) -> None:
    names = [model.id for model in client.models.list()]
    assert SMOLLM in names
    assert client.models.retrieve(SMOLLM).id == SMOLLM

    answer = client.chat.completions.create(model=SMOLLM, messages=HELLO, max_tokens=8, temperature=0)
    assert answer.object == "chat.completion" and answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    chunks = list(
        client.chat.completions.create(
            model=SMOLLM,
            messages=HELLO,
            max_tokens=8,
            temperature=0,
            stream=True,
        )
    )
    assert len(chunks) > 2 and all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.strip()
    assert any(chunk.choices and chunk.choices[0].finish_reason for chunk in chunks)

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model:1b", messages=HELLO)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM, messages=[])


def test_the_openai_client_in_front_of_a_node(node: RunningNode, tmp_path: Path) -> None:
    for started in _platform(tmp_path, node.url):
        client = _client(started)
        _exercise(client)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{started.url}/v1", api_key="avk_wrong", max_retries=0).models.list()


def test_the_openai_client_through_a_gateway_which_attributes_usage_per_user(
    gateway: Built, tmp_path: Path
) -> None:
    with gateway.client(MASTER) as admin:
        service = admin.post("/api/avocado/keys", json={"name": "platform"}).json()
    for started in _platform(tmp_path, gateway.url, service["key"]):
        _exercise(_client(started))
        ada = started.sign_in("ada@example.com").get("/api/v1/users/me").json()["id"]

    def usage() -> list[dict[str, object]]:
        with gateway.client(MASTER) as admin:
            rows: list[dict[str, object]] = admin.get("/api/avocado/keys/users").json()["usage"]
        return rows

    # Everything the platform asked the gateway for ada counts for her: 5 model listings (list,
    # retrieve, and the check before each of the 3 completions asked for: the gateway counts
    # listings as a key's requests) and 2 completions; the request with no messages never left.
    wait_until(lambda: [r["requests"] for r in usage()] == [7], timeout=15, message=f"usage: {usage()}")
    (row,) = usage()
    assert (row["key_id"], row["user"]) == (service["id"], ada)
    assert isinstance(row["tokens_out"], int) and row["tokens_out"] > 0


def test_an_access_token_works_too_and_a_refused_upstream_is_a_502(gateway: Built, tmp_path: Path) -> None:
    for started in _platform(tmp_path, gateway.url):  # no service credential: the gateway refuses
        started.register("ada@example.com")
        token = started.sign_in("ada@example.com").tokens["access_token"]
        client = openai.OpenAI(base_url=f"{started.url}/v1", api_key=token, max_retries=0)
        with pytest.raises(openai.InternalServerError) as refused:
            client.models.list()
        assert refused.value.status_code == 502
        assert "refused the platform's credential" in str(refused.value)


def _keyed(platform: RunningPlatform) -> tuple[str, str]:
    """A user's id and personal API key."""
    platform.register("ada@example.com")
    session = platform.sign_in("ada@example.com")
    key = session.post("/api/v1/users/me/api-keys", json={"name": "script"}).json()["key"]
    return session.get("/api/v1/users/me").json()["id"], key


def test_the_upstream_gets_the_service_credential_and_the_user_and_a_leaving_client_ends_it(
    tmp_path: Path,
) -> None:
    standin = start_standin(model="standin:1", mode="stall")
    try:
        for started in _platform(tmp_path, standin.url, "service-credential"):
            user_id, key = _keyed(started)
            body = {"model": "standin:1", "messages": HELLO, "stream": True}
            with (
                started.client() as http,
                http.stream(
                    "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                ) as response,
            ):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.iter_lines()
                assert next(lines).startswith("data: ")  # the first chunk, then the stand-in stalls
            wait_until(lambda: standin.standin.disconnects == 1, message="the upstream request ended")
            [headers] = [hit[1] for hit in standin.standin.hits if hit[0] == "/v1/chat/completions"]
            assert headers["authorization"] == "Bearer service-credential"
            assert headers["x-avocado-user"] == user_id and key not in str(headers)
    finally:
        standin.stop()


def test_a_busy_upstream_s_answer_reaches_the_client(tmp_path: Path) -> None:
    standin = start_standin(model="standin:1", mode="busy")
    try:
        for started in _platform(tmp_path, standin.url):
            _, key = _keyed(started)
            with started.client() as http:
                answer = http.post(
                    "/v1/chat/completions",
                    json={"model": "standin:1", "messages": HELLO},
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert answer.status_code == 503 and answer.headers["retry-after"] == "7"
            assert answer.json()["error"]["message"] == "stand-in busy"
    finally:
        standin.stop()
