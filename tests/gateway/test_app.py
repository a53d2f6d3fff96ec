"""The gateway answers like a node: merged listings, Ollama's and OpenAI's error shapes, official clients."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import httpx
import ollama
import openai
import pytest

from avocado.gateway.nodes import NodePool
from tests.gateway.conftest import SMOLLM_B
from tests.gateway.support import RunningGateway, ScriptedAdmission, start_gateway, wait_until
from tests.support import GEMMA, GREEDY, SMOLLM, RunningNode, free_port

OPTIONS = {**GREEDY, "num_predict": 4}


def test_root_version_and_request_ids(gateway: RunningGateway) -> None:
    with gateway.client() as http:
        root = http.get("/")
        assert (root.status_code, root.text) == (200, "Ollama is running")
        assert http.head("/").status_code == 200
        assert set(http.get("/api/version").json()) == {"version"}
        generated = root.headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        assert (
            http.get("/", headers={"X-Request-ID": "client-id.42"}).headers["x-request-id"] == "client-id.42"
        )
        insane = http.get("/", headers={"X-Request-ID": "no spaces <allowed>"}).headers["x-request-id"]
        assert len(insane) == 32 and " " not in insane


def test_browsers_get_cors_on_model_routes_and_everyone_gets_the_same_answer(gateway: RunningGateway) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": OPTIONS}
    with gateway.client() as http:
        plain = http.post("/api/generate", json=body)
        local = http.post("/api/generate", json=body, headers={"Origin": "http://localhost:3000"})
        foreign = http.post("/api/generate", json=body, headers={"Origin": "http://evil.example"})
        preflight = http.options(
            "/api/generate",
            headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
        )
    assert plain.json()["response"] == local.json()["response"] == foreign.json()["response"]
    assert all(len(r.headers["x-request-id"]) == 32 for r in (plain, local, foreign))
    assert "access-control-allow-origin" not in plain.headers
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in local.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_one_request_id_from_client_to_node(
    gateway: RunningGateway, node_a: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": OPTIONS}

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "trace-42"]

    with caplog.at_level(logging.INFO, logger="avocado.request"), gateway.client() as http:
        answer = http.post("/api/generate", json=body, headers={"X-Request-ID": "trace-42"})
        # Both servers write their line once the answer has gone out, so a moment after the client has it.
        wait_until(lambda: len(lines()) >= 2, timeout=5, message="both log lines")
    assert answer.headers["x-request-id"] == "trace-42"
    paths = sorted((r.fields["path"], "node" in r.fields) for r in lines())  # type: ignore[attr-defined]
    assert paths == [("/api/generate", False), ("/api/generate", True)]  # the node's line, the gateway's
    with node_a.client() as http:
        direct = http.get("/api/tags")
    assert len(direct.headers["x-request-id"]) == 32  # the node's own id when none is given


def test_listings_merge_the_nodes_models(gateway: RunningGateway, node_a: RunningNode) -> None:
    with gateway.client() as http:
        tags = http.get("/api/tags").json()["models"]
        assert [m["name"] for m in tags] == sorted([GEMMA, SMOLLM, SMOLLM_B])
        with node_a.client() as node_http:
            direct = {m["name"]: m for m in node_http.get("/api/tags").json()["models"]}
        assert next(m for m in tags if m["name"] == SMOLLM) == direct[SMOLLM]  # the node's own entry

        models = http.get("/v1/models").json()
        assert models["object"] == "list"
        assert [m["id"] for m in models["data"]] == sorted([GEMMA, SMOLLM, SMOLLM_B])
        assert all(m["object"] == "model" and m["created"] > 0 for m in models["data"])
        one = http.get(f"/v1/models/{SMOLLM_B}").json()
        assert one["id"] == SMOLLM_B and one["owned_by"] == "library"
        missing = http.get("/v1/models/ghost:1b")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "model 'ghost:1b' not found"
        assert missing.json()["error"]["code"] == "model_not_found"

        body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": OPTIONS}
        assert http.post("/api/generate", json=body).status_code == 200
        running = http.get("/api/ps").json()["models"]
        assert SMOLLM in {m["name"] for m in running}
        assert len({m["name"] for m in running}) == len(running)


def test_the_nodes_page_shows_everything_but_keys(gateway: RunningGateway, node_a: RunningNode) -> None:
    with gateway.client() as http:
        listed = http.get("/api/avocado/nodes").json()["nodes"]
    assert [n["url"] for n in listed] == sorted(n["url"] for n in listed)
    entry = next(n for n in listed if n["url"] == node_a.url)
    assert entry["source"] == "static" and entry["status"] == "online" and entry["healthy"] is True
    assert entry["breaker"] == "closed" and entry["models"] == [SMOLLM] and entry["api_key"] is False
    assert {"in_flight", "latency_ms", "consecutive_failures", "last_error", "name"} <= set(entry)


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show"])
def test_unknown_model_is_ollamas_404(gateway: RunningGateway, path: str) -> None:
    body = {"model": "missing:7b", "prompt": "hi", "messages": [], "input": "x"}
    response = httpx.post(f"{gateway.url}{path}", json=body)
    assert (response.status_code, response.json()) == (404, {"error": "model 'missing:7b' not found"})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_unknown_model_is_openais_404(gateway: RunningGateway, path: str) -> None:
    body = {
        "model": "missing:7b",
        "prompt": "hi",
        "messages": [{"role": "user", "content": "hi"}],
        "input": "x",
    }
    response = httpx.post(f"{gateway.url}{path}", json=body)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "model 'missing:7b' not found",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


BAD_INPUT: list[tuple[str, bytes]] = [
    ("/api/generate", b'{"model": "smollm2:135m", "prompt": '),
    ("/api/generate", b"[]"),
    ("/api/generate", b'{"prompt": "hi"}'),
    ("/api/generate", b'{"model": "", "prompt": "hi"}'),
    ("/api/generate", b'{"model": 5}'),
    ("/api/generate", b""),
    ("/api/chat", b'{"model": "bad name", "messages": []}'),
    ("/api/embed", b'{"input": "x"}'),
    ("/api/show", b"{}"),
    ("/v1/chat/completions", b'{"messages": []}'),
    ("/v1/chat/completions", b"{bad"),
    ("/v1/completions", b'{"model": "bad name", "prompt": "x"}'),
    ("/v1/embeddings", b'{"model": "", "input": "x"}'),
]


@pytest.mark.parametrize(("path", "body"), BAD_INPUT)
def test_bad_input_is_answered_as_the_node_answers_it(
    gateway: RunningGateway, node_a: RunningNode, path: str, body: bytes
) -> None:
    headers = {"content-type": "application/json"}
    direct = httpx.post(f"{node_a.url}{path}", content=body, headers=headers)
    via = httpx.post(f"{gateway.url}{path}", content=body, headers=headers)
    assert (via.status_code, via.json()) == (direct.status_code, direct.json())
    assert via.status_code == 400


def test_routes_and_methods_that_do_not_exist(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.url}/api/nowhere").json() == {"error": "GET /api/nowhere not found"}
    wrong = httpx.get(f"{gateway.url}/api/generate")
    assert wrong.status_code == 405 and "error" in wrong.json()
    pull = httpx.get(f"{gateway.url}/api/pull")
    assert pull.status_code == 405 and "error" in pull.json()


def test_no_healthy_node_is_503_in_both_shapes() -> None:
    running = start_gateway(NodePool([f"http://127.0.0.1:{free_port()}"], health_timeout=0.5))
    try:
        ollama_style = httpx.post(f"{running.url}/api/chat", json={"model": SMOLLM, "messages": []})
        assert (ollama_style.status_code, ollama_style.json()) == (
            503,
            {"error": "no healthy node is available"},
        )
        openai_style = httpx.post(
            f"{running.url}/v1/chat/completions", json={"model": SMOLLM, "messages": []}
        )
        assert openai_style.status_code == 503
        error = openai_style.json()["error"]
        assert error["message"] == "no healthy node is available" and error["type"] == "server_error"
        assert httpx.get(f"{running.url}/api/tags").json() == {"models": []}
        assert httpx.get(f"{running.url}/v1/models").json() == {"object": "list", "data": []}
        outcome = running.outcomes.find(ollama_style.headers["x-request-id"])
        assert (outcome.status, outcome.error, outcome.node) == (503, "no_node", None)
    finally:
        running.stop()


def test_listings_show_only_the_models_a_key_may_use(node_a: RunningNode, node_b: RunningNode) -> None:
    admission = ScriptedAdmission()
    running = start_gateway(NodePool([node_a.url, node_b.url]), admission=admission)
    try:
        only = {"x-test-models": f"{GEMMA},{SMOLLM_B}"}
        tags = httpx.get(f"{running.url}/api/tags", headers=only).json()["models"]
        assert [m["name"] for m in tags] == [GEMMA, SMOLLM_B]
        ids = [m["id"] for m in httpx.get(f"{running.url}/v1/models", headers=only).json()["data"]]
        assert ids == [GEMMA, SMOLLM_B]
        assert httpx.get(f"{running.url}/v1/models/{SMOLLM}", headers=only).status_code == 404
        refused = httpx.get(f"{running.url}/api/tags", headers={"x-test-refuse": "429"})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
        assert refused.json() == {"error": "refused by the test"}
        assert len(admission.finished) == 3 and all(o.model is None for _, o in admission.finished)
    finally:
        running.stop()


def test_the_ollama_client_through_the_gateway(gateway: RunningGateway) -> None:
    with contextlib.closing(ollama.Client(host=gateway.url)) as client:
        assert {m.model for m in client.list().models} == {GEMMA, SMOLLM, SMOLLM_B}
        assert client.show(SMOLLM_B).details.family == "llama"

        generated = client.generate(SMOLLM, "What is the capital of France?", options=OPTIONS)
        assert generated.done and generated.response and generated.eval_count == 4
        streamed = list(client.generate(SMOLLM_B, "Count:", options=OPTIONS, stream=True))
        assert len(streamed) > 2 and streamed[-1].done and not streamed[0].done

        messages = [{"role": "user", "content": "Say hello."}]
        chat = client.chat(SMOLLM, messages=messages, options=OPTIONS)
        assert chat.message.role == "assistant" and chat.message.content
        parts = [
            c.message.content or ""
            for c in client.chat(SMOLLM_B, messages=messages, options=OPTIONS, stream=True)
        ]
        assert "".join(parts)

        vectors = client.embed(SMOLLM, ["one", "two"]).embeddings
        assert len(vectors) == 2 and len(vectors[0]) > 100
        assert len(client.embeddings(model=SMOLLM_B, prompt="one").embedding) > 100

        with pytest.raises(ollama.ResponseError) as err:
            client.chat("ghost:1b", messages=messages)
        assert err.value.status_code == 404 and err.value.error == "model 'ghost:1b' not found"


def test_the_openai_client_through_the_gateway(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    assert {m.id for m in client.models.list()} == {GEMMA, SMOLLM, SMOLLM_B}
    assert client.models.retrieve(SMOLLM).id == SMOLLM
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ghost:1b")

    messages: list[Any] = [{"role": "user", "content": "Say hello."}]
    chat = client.chat.completions.create(model=SMOLLM, messages=messages, max_tokens=4, temperature=0)
    assert chat.choices[0].message.content and chat.usage.completion_tokens == 4
    chunks = list(
        client.chat.completions.create(
            model=SMOLLM_B,
            messages=messages,
            max_tokens=4,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == 4

    completion = client.completions.create(model=SMOLLM, prompt="1, 2, 3,", max_tokens=4, temperature=0)
    assert completion.choices[0].text and completion.usage.completion_tokens == 4

    embedded = client.embeddings.create(model=SMOLLM_B, input=["one", "two"])
    assert len(embedded.data) == 2 and embedded.usage.prompt_tokens > 0

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="ghost:1b", messages=messages)
    assert "model 'ghost:1b' not found" in str(err.value)
    client.close()


def test_token_usage_reaches_the_outcome(gateway: RunningGateway) -> None:
    def run(path: str, body: dict[str, Any]) -> tuple[int, int]:
        with gateway.client() as http, http.stream("POST", path, json=body) as response:
            assert response.status_code == 200
            for _ in response.iter_raw():
                pass
        outcome = gateway.outcomes.find(response.headers["x-request-id"])
        assert outcome.status == 200 and outcome.error is None and outcome.ttft_s is not None
        return outcome.tokens_in, outcome.tokens_out

    prompt = {"model": SMOLLM, "prompt": "Hi", "options": OPTIONS}
    tokens_in, tokens_out = run("/api/generate", prompt)
    assert tokens_in > 0 and tokens_out == 4
    assert run("/api/generate", {**prompt, "stream": False}) == (tokens_in, 4)
    chat = {"model": SMOLLM_B, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    assert run("/v1/chat/completions", chat)[1] == 3
    streamed = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    assert run("/v1/chat/completions", streamed)[1] == 3
    # No usage in the stream: the generated tokens are counted by chunk (one a token, besides the
    # stream's first and last), the prompt's are not known.
    assert run("/v1/chat/completions", {**chat, "stream": True}) == (0, 5)
    assert run("/api/embed", {"model": SMOLLM, "input": ["a b c"]})[0] > 0
    assert run("/v1/embeddings", {"model": SMOLLM, "input": "a b c"}) == run(
        "/api/embed", {"model": SMOLLM, "input": "a b c"}
    )
