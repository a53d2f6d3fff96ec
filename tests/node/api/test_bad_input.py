"""Bad input gets a clear error with the right status, and the node keeps serving."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from avocado.node.templates.gotemplate import GoTemplate, Limits
from tests.node.api.support import assert_error, gate_renders
from tests.support import SMOLLM, RunningNode


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/show"])
def test_unknown_model_is_404(http: httpx.Client, path: str) -> None:
    body = {
        "model": "missing:7b",
        "prompt": "hi",
        "messages": [{"role": "user", "content": "hi"}],
        "input": "x",
    }
    assert_error(http.post(path, json=body), 404, "model 'missing:7b' not found")


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat", "/api/embed", "/api/show"])
def test_missing_model_is_400(http: httpx.Client, path: str) -> None:
    assert_error(http.post(path, json={"prompt": "hi"}), 400, "model is required")


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(
        "/api/generate",
        content=b'{"model": "smollm2:135m", "prompt": ',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 400, "invalid JSON")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": SMOLLM, "prompt": 5}, "prompt"),
        ({"model": SMOLLM, "prompt": "hi", "stream": "yes please"}, "stream"),
        ({"model": SMOLLM, "prompt": "hi", "options": {"temperature": "hot"}}, "temperature"),
        ({"model": SMOLLM, "prompt": "hi", "options": {"num_predict": -5}}, "num_predict"),
        ({"model": SMOLLM, "prompt": "hi", "options": {"num_ctx": 10**9}}, "num_ctx"),
        ({"model": SMOLLM, "prompt": "hi", "options": {"top_p": 7}}, "top_p"),
        ({"model": SMOLLM, "prompt": "hi", "keep_alive": "forever-ish"}, "keep_alive"),
        ({"model": SMOLLM, "prompt": "hi", "format": "xml"}, "format"),
        ({"model": SMOLLM, "prompt": "hi", "images": ["!!!not base64!!!"]}, "base64"),
        ({"model": SMOLLM, "prompt": "hi", "images": ["aGVsbG8="]}, "image"),
        ({"model": "bad name with spaces", "prompt": "hi"}, "invalid model name"),
    ],
)
def test_generate_rejects_bad_fields(http: httpx.Client, body: dict[str, object], fragment: str) -> None:
    assert_error(http.post("/api/generate", json=body), 400, fragment)


def test_chat_rejects_bad_messages(http: httpx.Client) -> None:
    bad_role = {"model": SMOLLM, "messages": [{"role": "wizard", "content": "hi"}]}
    assert_error(http.post("/api/chat", json=bad_role), 400, "role")
    not_a_list = {"model": SMOLLM, "messages": "hello"}
    assert_error(http.post("/api/chat", json=not_a_list), 400, "messages")


def test_empty_messages_loads_the_model(http: httpx.Client) -> None:
    body = http.post("/api/chat", json={"model": SMOLLM, "messages": []}).json()
    assert body["done"] is True and body["done_reason"] == "load"
    assert body["message"] == {"role": "assistant", "content": ""}


def test_raw_with_an_empty_prompt_loads_the_model(http: httpx.Client) -> None:
    """In raw mode the prompt is all the model sees: a system prompt beside an empty one makes nothing to
    generate, so the model is loaded, as for any empty prompt (the fuzz found it answered 400)."""
    body = {"model": SMOLLM, "prompt": "", "raw": True, "system": "Be brief."}
    answer = http.post("/api/generate", json=body).json()
    assert answer["done"] is True and answer["done_reason"] == "load" and answer["response"] == ""


def test_suffix_on_a_model_without_insert(http: httpx.Client) -> None:
    response = http.post("/api/generate", json={"model": SMOLLM, "prompt": "def f(", "suffix": "return x"})
    assert_error(response, 400, "does not support insert")


def test_prompt_longer_than_context_is_truncated(http: httpx.Client) -> None:
    long_prompt = "word " * 3000  # over the test node's 2048-token context
    body = {
        "model": SMOLLM,
        "prompt": long_prompt,
        "stream": False,
        "options": {"num_predict": 2, "temperature": 0},
    }
    result = http.post("/api/generate", json=body).json()
    assert result["done"] is True
    assert result["prompt_eval_count"] < 2048


def test_embed_without_truncate_is_400_when_too_long(http: httpx.Client) -> None:
    body = {"model": SMOLLM, "input": "word " * 4500, "truncate": False}  # long: tokenized off the loop
    assert_error(http.post("/api/embed", json=body), 400, "context length")
    body["truncate"] = True
    assert len(http.post("/api/embed", json=body).json()["embeddings"]) == 1


def test_create_with_a_path_a_missing_blob_or_a_non_gguf_file(http: httpx.Client, tmp_path: Path) -> None:
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("this is not a model")
    for path in (str(text_file), str(tmp_path / "nope.gguf"), "./model.gguf", "~/m.gguf"):
        local = {"model": "broken:1", "from": path, "stream": False}
        assert_error(http.post("/api/create", json=local), 400, "is a path")  # the node reads no paths
    missing = {"model": "broken:1", "files": {"m.gguf": "sha256:" + "0" * 64}, "stream": False}
    assert_error(http.post("/api/create", json=missing), 400, "was not uploaded")
    data = text_file.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
    not_gguf = {"model": "broken:1", "files": {"notes.gguf": digest}, "stream": False}
    assert_error(http.post("/api/create", json=not_gguf), 400, "not a GGUF file")
    unknown_base = {"model": "broken:1", "from": "ghost:1b", "stream": False}
    assert_error(http.post("/api/create", json=unknown_base), 404, "not found")
    bad_modelfile = {"model": "broken:1", "modelfile": "PARAMETER temperature 0.1", "stream": False}
    assert_error(http.post("/api/create", json=bad_modelfile), 400, "FROM")
    assert "broken:1" not in {m["name"] for m in http.get("/api/tags").json()["models"]}


def test_create_error_in_stream_is_an_error_line(http: httpx.Client) -> None:
    body = {"model": "broken:2", "files": {"m.gguf": "sha256:" + "0" * 64}}
    response = http.post("/api/create", json=body)
    assert response.status_code == 200  # progress had started streaming, as in Ollama
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0] == {"status": "gathering model components"}
    assert "was not uploaded" in lines[-1]["error"]


def test_blob_upload_with_wrong_digest(http: httpx.Client) -> None:
    digest = "sha256:" + "0" * 64
    assert http.head(f"/api/blobs/{digest}").status_code == 404
    assert_error(http.post(f"/api/blobs/{digest}", content=b"hello"), 400, "digest mismatch")
    assert_error(http.post("/api/blobs/sha256:xyz", content=b"hello"), 400, "invalid digest")


def test_copy_and_delete_unknown(http: httpx.Client) -> None:
    assert_error(http.post("/api/copy", json={"source": "ghost:1", "destination": "x:1"}), 404, "not found")
    assert_error(http.request("DELETE", "/api/delete", json={"model": "ghost:1"}), 404, "not found")


def test_unknown_route_is_404_json(http: httpx.Client) -> None:
    assert_error(http.get("/api/nothing-here"), 404, "not found")


def test_openai_bad_input_shape(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": SMOLLM, "messages": "hi"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "messages" in error["message"]
    response = http.post("/v1/embeddings", json={"model": SMOLLM, "input": [1, 2, 3]})
    assert response.status_code == 400 and "token arrays" in response.json()["error"]["message"]


def test_still_serving_after_all_that(http: httpx.Client) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    assert http.post("/api/generate", json=body).json()["done"] is True
    assert http.get("/").text == "Ollama is running"


def test_root_and_version(http: httpx.Client) -> None:
    assert http.head("/").status_code == 200
    assert json.loads(http.get("/api/version").text)["version"]


def test_think_on_a_model_without_thinking(http: httpx.Client) -> None:
    body = {"model": SMOLLM, "messages": [{"role": "user", "content": "hi"}], "think": True}
    assert_error(http.post("/api/chat", json=body), 400, "does not support thinking")
    body["think"] = False
    body["options"] = {"num_predict": 1}
    body["stream"] = False
    assert http.post("/api/chat", json=body).json()["done"] is True


def test_adapters_are_refused_clearly(http: httpx.Client) -> None:
    body = {"model": "lora:1", "modelfile": f"FROM {SMOLLM}\nADAPTER ./lora.gguf", "stream": False}
    assert_error(http.post("/api/create", json=body), 400, "not supported")


def test_long_chat_drops_the_oldest_turns(http: httpx.Client) -> None:
    filler = "lorem ipsum " * 200  # ~400 tokens a turn; 8 turns overflow the 2048-token context
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a parrot."}]
    for i in range(8):
        messages += [
            {"role": "user", "content": f"turn {i} {filler}"},
            {"role": "assistant", "content": "ok"},
        ]
    messages.append({"role": "user", "content": "Say hi."})
    body = {"model": SMOLLM, "messages": messages, "stream": False, "options": {"num_predict": 2}}
    result = http.post("/api/chat", json=body).json()
    assert result["done"] is True
    assert 1000 < result["prompt_eval_count"] < 2048


def test_a_very_long_chat_does_not_stall_other_requests(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ~36000-token conversation is rendered and cut to fit in a worker thread: held there, it
    leaves the node answering."""
    turn = "the quick brown fox jumps over the lazy dog " * 12  # ~120 tokens
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {turn}"} for i in range(301)
    ]
    options = {"num_predict": 1, "num_ctx": 512}  # a short prefill once the conversation is cut
    body = {"model": SMOLLM, "messages": messages, "stream": False, "options": options}

    def whole(tmpl: GoTemplate, data: Mapping[str, Any], limits: Limits) -> bool:
        return len(data.get("Messages") or []) >= 301  # the whole conversation, first

    with ThreadPoolExecutor(max_workers=1) as pool, node.client() as http:
        http.post("/api/generate", json={"model": SMOLLM, "prompt": "Hi", "options": options})
        started, go = gate_renders(monkeypatch, whole)
        chat = pool.submit(http.post, "/api/chat", json=body, timeout=120)
        assert started.wait(60), "the conversation was never rendered"
        try:
            assert http.get("/api/version", timeout=10).status_code == 200  # while it renders
        finally:
            go.set()
        result = chat.result().json()
    assert result["done"] is True and result["prompt_eval_count"] < 512


def test_json_body_without_json_content_type_is_read(http: httpx.Client) -> None:
    """``curl URL -d '{...}'`` (form content type), as in Ollama's own docs, works as with Ollama."""
    body = json.dumps({"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
    for kind in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {"content-type": kind} if kind else {}
        response = http.post("/api/generate", content=body, headers=headers)
        assert response.status_code == 200, (kind, response.text)
        assert response.json()["done"] is True


@pytest.mark.parametrize(
    ("context", "fragment"),
    [
        ([999_999_999], "not a token of this model"),
        ([1, 2, -1], "not a token of this model"),
        ([1, 2**40], "not a token of this model"),
        ([True, 1], "context"),
        ([1.5], "context"),
        (["12"], "context"),
        ("1 2 3", "context"),
    ],
)
def test_context_with_foreign_tokens_is_400(http: httpx.Client, context: object, fragment: str) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "context": context, "stream": False}
    assert_error(http.post("/api/generate", json=body), 400, fragment)


def test_a_bad_context_does_not_hurt_a_request_running_beside_it(node: RunningNode) -> None:
    good = {"model": SMOLLM, "prompt": "Count to twenty.", "options": {"num_predict": 48, "temperature": 0}}
    bad = {"model": SMOLLM, "prompt": "Hi", "context": [10**9], "stream": False}
    with node.client() as http, http.stream("POST", "/api/generate", json=good) as stream:
        lines = stream.iter_lines()
        first = json.loads(next(lines))
        assert first["done"] is False  # generating now
        assert_error(http.post("/api/generate", json=bad), 400, "not a token")
        rest = [json.loads(line) for line in lines]
    assert "error" not in rest[-1] and rest[-1]["done"] is True and rest[-1]["eval_count"] > 1


def test_create_refuses_a_malformed_digest_before_its_stream(http: httpx.Client) -> None:
    """A digest that is no digest is the request's shape: its status says so (the fuzz found it answered
    200 with an error line), while a blob never uploaded is told in the stream, as on Ollama."""
    body = {"model": "broken:3", "files": {"m.gguf": "sha256:not-hex"}}
    assert_error(http.post("/api/create", json=body), 400, "invalid digest")
    assert_error(http.post("/api/create", json={"model": "broken:3", "from": ""}), 400, "neither 'from' nor")
