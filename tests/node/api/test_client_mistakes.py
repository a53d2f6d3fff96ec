"""A client's mistake is a 400 that says what is wrong, never a 500, and never costs the node.

Each of these once answered 500, took seconds and gigabytes, or ended the node's process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avocado.node.service import MAX_REPEAT, MAX_SCHEMA
from tests.node.api.support import assert_error
from tests.support import GEMMA, SMOLLM, RunningNode, linked_home, start_node


def generate(**fields: Any) -> dict[str, Any]:
    return {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}, **fields}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 100_000_000},  # a 500 MB grammar, built in 13 s
        {"type": "array", "items": {"type": "integer"}, "minItems": 10**9},  # every byte of memory
        {"type": "string", "pattern": "^a{100000000}$"},
        {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 2000} for i in range(6)}},
    ],
)
def test_a_schema_that_asks_for_too_much_is_refused_at_once(http: httpx.Client, schema: object) -> None:
    started = time.monotonic()
    assert_error(http.post("/api/generate", json=generate(format=schema)), 400, f"at most {MAX_REPEAT}")
    assert time.monotonic() - started < 5


def test_a_schema_too_long_is_refused(http: httpx.Client) -> None:
    body = generate(format={"type": "object", "description": "x" * MAX_SCHEMA}, messages=[])
    assert_error(http.post("/api/chat", json=body), 400, f"at most {MAX_SCHEMA}")


@pytest.mark.parametrize("schema", [{"enum": []}, {"anyOf": []}])
@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_a_schema_llama_cpp_cannot_use_is_400(http: httpx.Client, path: str, schema: object) -> None:
    """The converter turns these into grammars that llama.cpp then refuses."""
    body = generate(format=schema, messages=[{"role": "user", "content": "Hi"}])
    assert_error(http.post(path, json=body), 400, "invalid format")


def test_openai_response_format_with_a_bad_schema_is_400(http: httpx.Client) -> None:
    schema = {"type": "string", "maxLength": 10**9}
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = {"model": SMOLLM, "messages": [{"role": "user", "content": "Hi"}], "response_format": bad}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400 and "at most" in response.json()["error"]["message"]


@pytest.mark.parametrize("num_ctx", [1, 2, 8])
def test_a_tiny_num_ctx_does_not_end_the_node(http: httpx.Client, num_ctx: int) -> None:
    """llama.cpp gives a context at least its minimum, and lowers its batch to fit: a node that kept
    its own larger batch failed an assertion in llama.cpp, which ended the whole process."""
    response = http.post("/api/generate", json=generate(options={"num_ctx": num_ctx, "num_predict": 2}))
    assert response.status_code == 200 and response.json()["done"] is True
    assert http.get("/").text == "Ollama is running"


@pytest.fixture(scope="module")
def small_memory(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    own = linked_home(home, tmp_path_factory.mktemp("small-memory"))
    running = start_node(own, max_memory="1GB", prompt_cache="0")
    yield running
    running.stop()


def test_a_num_ctx_too_large_for_memory_is_400(small_memory: RunningNode) -> None:
    with small_memory.client() as http:
        body = generate(model=GEMMA, options={"num_ctx": 32768, "num_predict": 2})
        assert_error(http.post("/api/generate", json=body), 400, "more than the")
        body["options"] = {"num_ctx": 2048, "num_predict": 2}
        assert http.post("/api/generate", json=body).json()["done"] is True


# Found by bench/fuzz.py: an integer too large for a float raised OverflowError, answered 500.
HUGE = 10**400


@pytest.mark.parametrize("option", ["temperature", "top_p", "mirostat_tau"])
def test_an_option_too_large_for_a_float_is_400(http: httpx.Client, option: str) -> None:
    body = generate(options={option: HUGE})
    assert_error(http.post("/api/generate", content=_json(body)), 400, f"option '{option}' must be between")


@pytest.mark.parametrize("keep_alive", [HUGE, 1e200], ids=["past a float", "past a timedelta"])
def test_a_keep_alive_too_large_keeps_the_model_loaded(http: httpx.Client, keep_alive: float) -> None:
    """1e200 seconds once made every later /api/ps a 500, until the model was unloaded."""
    response = http.post("/api/generate", content=_json(generate(keep_alive=keep_alive)))
    assert response.status_code == 200 and response.json()["done"] is True
    try:
        listed = http.get("/api/ps")
        assert listed.status_code == 200, listed.text
        expires = {m["name"]: m["expires_at"] for m in listed.json()["models"]}
        assert expires[SMOLLM] > "2100"  # forever, as a negative keep_alive
    finally:  # the other tests' node keeps its usual keep_alive
        http.post("/api/generate", json={"model": SMOLLM, "keep_alive": 0})


@pytest.mark.parametrize("arguments", ["1", "[]", '"text"', "not json"])
def test_tool_call_arguments_not_an_object_are_400(http: httpx.Client, arguments: str) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    body = {"model": SMOLLM, "messages": messages, "max_tokens": 2}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert "not a JSON object" in response.json()["error"]["message"]


def test_openai_json_schema_without_a_schema_constrains_nothing(http: httpx.Client) -> None:
    """OpenAI's ``json_schema.schema`` is optional; without one Ollama enforces nothing, nor does the node."""
    response_format = {"type": "json_schema", "json_schema": {"name": "answer"}}
    body = {"model": SMOLLM, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    response = http.post("/v1/chat/completions", json={**body, "response_format": response_format})
    assert response.status_code == 200, response.text


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
