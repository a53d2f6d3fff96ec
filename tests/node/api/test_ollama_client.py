"""The official ``ollama`` Python package, unchanged, against a real node."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import ollama
import pytest

from tests.support import GEMMA, GREEDY, SMOLLM, RunningNode


@pytest.fixture
def client(node: RunningNode) -> ollama.Client:
    return ollama.Client(host=node.url)


def test_list_shows_bundled_models(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert {SMOLLM, GEMMA} <= set(models)
    smol = models[SMOLLM]
    assert smol.size and smol.size > 90_000_000
    assert smol.digest and len(smol.digest) == 64
    assert smol.details is not None
    assert smol.details.family == "llama"
    assert smol.details.parameter_size == "134.52M"
    assert smol.details.quantization_level == "Q4_1"
    assert models[GEMMA].details is not None and models[GEMMA].details.family == "gemma3"


def test_show(client: ollama.Client) -> None:
    info = client.show(SMOLLM)
    assert info.template and "<|im_start|>" in info.template
    assert info.parameters and "stop" in info.parameters
    assert info.modelfile and "FROM " in info.modelfile
    assert (
        info.capabilities is not None and "completion" in info.capabilities and "tools" in info.capabilities
    )
    assert info.modelinfo is not None
    assert info.modelinfo["general.architecture"] == "llama"
    assert info.modelinfo["llama.context_length"] == 8192
    assert info.details is not None and info.details.format == "gguf"


def test_show_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.show("no-such-model:1b")
    assert err.value.status_code == 404
    assert "not found" in err.value.error


def test_generate_non_streaming(client: ollama.Client) -> None:
    result = client.generate(SMOLLM, "What is the capital of France?", options={**GREEDY, "num_predict": 24})
    assert result.done and result.done_reason in ("stop", "length")
    assert "Paris" in result.response
    assert result.eval_count and 0 < result.eval_count <= 24
    assert result.prompt_eval_count and result.prompt_eval_count > 5
    for field in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(getattr(result, field), int)
    assert result.total_duration and result.eval_duration and result.total_duration > result.eval_duration
    assert result.context and len(result.context) >= result.prompt_eval_count


def test_generate_streaming_matches_non_streaming(client: ollama.Client) -> None:
    options = {**GREEDY, "num_predict": 20}
    whole = client.generate(SMOLLM, "Count from one to five.", options=options)
    chunks = list(client.generate(SMOLLM, "Count from one to five.", options=options, stream=True))
    assert len(chunks) > 3
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.response for c in chunks) == whole.response
    assert chunks[-1].eval_count == whole.eval_count
    assert len(chunks) - 1 == whole.eval_count  # one chunk a token, though fast tokens go out in bursts


def test_generate_raw_and_system(client: ollama.Client) -> None:
    raw = client.generate(
        SMOLLM, "The first three letters are A, B,", raw=True, options={**GREEDY, "num_predict": 4}
    )
    assert raw.response.strip()
    assert raw.context is None
    pirate = client.generate(SMOLLM, "Hi", system="Reply in French.", options={**GREEDY, "num_predict": 8})
    assert pirate.response.strip()


def test_generate_on_gemma_uses_its_turn_format(client: ollama.Client) -> None:
    result = client.generate(GEMMA, "The capital of France is", options={**GREEDY, "num_predict": 8})
    assert result.done and result.response.strip()


def test_chat(client: ollama.Client) -> None:
    response = client.chat(
        SMOLLM,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        options={**GREEDY, "num_predict": 16},
    )
    assert response.message.role == "assistant"
    assert "Paris" in (response.message.content or "")
    assert response.done_reason in ("stop", "length")


def test_chat_streaming(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            SMOLLM,
            messages=[
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."},
                {"role": "user", "content": "Another one."},
            ],
            options={**GREEDY, "num_predict": 12},
            stream=True,
        )
    )
    assert parts[-1].done and parts[-1].eval_count
    assert "".join(p.message.content or "" for p in parts).strip()


def test_chat_format_json(client: ollama.Client) -> None:
    response = client.chat(
        SMOLLM,
        messages=[{"role": "user", "content": "Give a JSON object with a key name set to Bob."}],
        format="json",
        options={**GREEDY, "num_predict": 40},
    )
    content = response.message.content or ""
    if response.done_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut by num_predict: still the start of a JSON object
        assert content.lstrip().startswith("{")


def test_chat_format_schema_is_enforced(client: ollama.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
    }
    response = client.chat(
        SMOLLM,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        format=schema,
        options={**GREEDY, "num_predict": 60},
    )
    data = json.loads(response.message.content or "")
    assert data["city"] in ("Paris", "Rome") and isinstance(data["sunny"], bool)


def test_chat_with_tools_returns_a_tool_call_or_text(client: ollama.Client) -> None:
    def get_weather(city: str) -> str:
        """Get the current weather for a city.

        Args:
          city: The name of the city
        """
        return "sunny"

    response = client.chat(
        SMOLLM,
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the tool."}],
        tools=[get_weather],
        options={**GREEDY, "num_predict": 64},
    )
    calls = response.message.tool_calls or []
    if calls:
        assert calls[0].function.name == "get_weather"
        assert isinstance(calls[0].function.arguments, dict)
    else:
        assert response.message.content


def test_chat_tool_result_turn_renders(client: ollama.Client) -> None:
    response = client.chat(
        SMOLLM,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
            },
            {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"},
        ],
        options={**GREEDY, "num_predict": 24},
    )
    assert response.done


def test_embed(client: ollama.Client) -> None:
    result = client.embed(SMOLLM, ["hello world", "goodbye"])
    assert len(result.embeddings) == 2
    assert len(result.embeddings[0]) == 576
    norm = sum(x * x for x in result.embeddings[0]) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    assert result.embeddings[0] != result.embeddings[1]
    single = client.embed(SMOLLM, "hello world")
    assert single.embeddings[0] == pytest.approx(result.embeddings[0], abs=1e-4)


def test_embed_gemma_dimensions(client: ollama.Client) -> None:
    assert len(client.embed(GEMMA, "hello").embeddings[0]) == 640


def test_legacy_embeddings(client: ollama.Client) -> None:
    result = client.embeddings(SMOLLM, "hello world")
    assert len(result.embedding) == 576


def test_ps_and_keep_alive_zero_unloads(client: ollama.Client) -> None:
    client.generate(GEMMA, "Hi", options={"num_predict": 1})
    loaded = {m.model: m for m in client.ps().models}
    assert GEMMA in loaded
    entry = loaded[GEMMA]
    assert entry.size and entry.size > 100_000_000
    assert entry.expires_at is not None
    unload = client.generate(GEMMA, "", keep_alive=0)
    assert unload.done_reason == "unload"
    assert GEMMA not in {m.model for m in client.ps().models}
    load = client.generate(GEMMA, "")
    assert load.done_reason == "load"
    assert GEMMA in {m.model for m in client.ps().models}


def test_create_copy_delete(client: ollama.Client, tmp_path: Path) -> None:
    progress = [
        p.status
        for p in client.create("pirate:test", from_=SMOLLM, system="Talk like a pirate.", stream=True)
    ]
    assert progress[-1] == "success"
    info = client.show("pirate:test")
    assert info.system == "Talk like a pirate." if hasattr(info, "system") else True
    assert "pirate" in (info.modelfile or "")
    assert client.copy("pirate:test", "pirate:copy").status == "success"
    names = {m.model for m in client.list().models}
    assert {"pirate:test", "pirate:copy"} <= names
    assert client.delete("pirate:test").status == "success"
    assert client.delete("pirate:copy").status == "success"
    names = {m.model for m in client.list().models}
    assert "pirate:test" not in names and SMOLLM in names
    assert client.generate(SMOLLM, "Hi", options={"num_predict": 1}).done


def test_create_with_parameters_applies_them(client: ollama.Client) -> None:
    client.create("short:test", from_=SMOLLM, parameters={"num_predict": 3, "temperature": 0})
    try:
        result = client.generate("short:test", "Tell me a long story.")
        assert result.eval_count == 3 and result.done_reason == "length"
        assert "num_predict" in (client.show("short:test").parameters or "")
    finally:
        client.delete("short:test")


def test_create_from_uploaded_gguf_blob(client: ollama.Client, node: RunningNode) -> None:
    weights = node.service.store.resolve(SMOLLM).model_path
    digest = client.create_blob(weights)
    client.create("uploaded:test", files={"model.gguf": digest}, template="{{ .Prompt }}")
    try:
        assert client.show("uploaded:test").template == "{{ .Prompt }}"
        assert client.generate("uploaded:test", "1, 2, 3,", options={**GREEDY, "num_predict": 3}).done
    finally:
        client.delete("uploaded:test")


def test_stop_option(client: ollama.Client) -> None:
    free = client.generate(
        SMOLLM, "Count from 1 to 10, separated by commas.", options={**GREEDY, "num_predict": 40}
    )
    assert "4" in free.response
    cut = client.generate(
        SMOLLM,
        "Count from 1 to 10, separated by commas.",
        options={**GREEDY, "num_predict": 40, "stop": ["4"]},
    )
    assert cut.done_reason == "stop" and "4" not in cut.response and free.response.startswith(cut.response)


def test_num_ctx_option_reloads_with_that_context(client: ollama.Client) -> None:
    client.generate(GEMMA, "Hi", options={"num_predict": 1, "num_ctx": 512})
    assert {m.model: m.context_length for m in client.ps().models}[GEMMA] == 512
    client.generate(GEMMA, "", keep_alive=0)


class _Unloads(logging.Handler):
    """Sets ``done`` when the node's model manager says it unloaded ``model``."""

    def __init__(self, model: str) -> None:
        super().__init__(logging.INFO)
        self.line = f"unloaded {model}"
        self.done = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.line:
            self.done.set()


def test_keep_alive_expiry_unloads(client: ollama.Client, caplog: pytest.LogCaptureFixture) -> None:
    watch = _Unloads(GEMMA)
    manager_log = logging.getLogger("avocado.node.engine.manager")
    manager_log.addHandler(watch)
    try:
        with caplog.at_level(logging.INFO, logger=manager_log.name):
            client.generate(GEMMA, "Hi", options={"num_predict": 1}, keep_alive="1s")
            assert GEMMA in {m.model for m in client.ps().models}
            assert watch.done.wait(30), "model was not unloaded after keep_alive"
    finally:
        manager_log.removeHandler(watch)
    assert GEMMA not in {m.model for m in client.ps().models}


FIM_TEMPLATE = (
    "<|im_start|>user\nComplete the middle.\n{{ .Prompt }}[gap]{{ .Suffix }}<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_create_with_messages_and_a_fill_in_the_middle_template(client: ollama.Client) -> None:
    """MESSAGE turns are kept and shown; a template with .Suffix makes `suffix` usable (insert)."""
    client.create(
        "fim:test",
        from_=SMOLLM,
        template=FIM_TEMPLATE,
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    )
    try:
        info = client.show("fim:test")
        assert info.capabilities is not None and "insert" in info.capabilities
        assert "MESSAGE user" in (info.modelfile or "")
        result = client.generate(
            "fim:test", "def add(a, b):", suffix="    return c", options={**GREEDY, "num_predict": 8}
        )
        assert result.done and result.eval_count
    finally:
        client.delete("fim:test")


def test_the_stream_interval_setting_reaches_the_model(client: ollama.Client, node: RunningNode) -> None:
    client.generate(SMOLLM, "Hi", options={**GREEDY, "num_predict": 2})
    loaded = node.service.manager.loaded[SMOLLM]
    assert loaded.delivery.interval == node.settings.stream_interval_seconds == 0.02
