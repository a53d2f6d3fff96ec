"""The official ``openai`` Python package, unchanged, against a real node."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support import GEMMA, SMOLLM, RunningNode


@pytest.fixture
def client(node: RunningNode) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{node.url}/v1", api_key="unused", max_retries=0)


def test_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {SMOLLM, GEMMA} <= ids
    model = client.models.retrieve(SMOLLM)
    assert model.id == SMOLLM and model.object == "model" and model.owned_by


def test_unknown_model_is_openai_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope:1b")
    assert "not found" in str(err.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope:1b", messages=[{"role": "user", "content": "hi"}])


def test_chat_completion(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=SMOLLM,
        messages=[{"role": "user", "content": "What is the capital of France? One word."}],
        temperature=0,
        seed=1,
        max_tokens=16,
    )
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant"
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_chat_completion_stream_with_usage(client: openai.OpenAI) -> None:
    kwargs = {
        "model": SMOLLM,
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0,
        "max_tokens": 12,
    }
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_usage_reports_the_prompt_tokens_found_in_the_cache(client: openai.OpenAI, node: RunningNode) -> None:
    """A follow-up turn starts with what the node already evaluated: OpenAI's ``cached_tokens``."""
    asked: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name a large animal."}]
    first = client.chat.completions.create(model=SMOLLM, messages=asked, temperature=0, max_tokens=8)
    assert first.usage is not None
    reply: ChatCompletionMessageParam = {"role": "assistant", "content": first.choices[0].message.content}
    follow_up = [*asked, reply, {"role": "user", "content": "And a small one?"}]
    chunks = list(
        client.chat.completions.create(
            model=SMOLLM,
            messages=follow_up,
            temperature=0,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached is not None and first.usage.prompt_tokens <= cached < usage.prompt_tokens
    legacy = client.completions.create(model=SMOLLM, prompt="Once upon a time", max_tokens=4, temperature=0)
    assert legacy.usage is not None and legacy.usage.prompt_tokens_details is not None
    assert legacy.usage.prompt_tokens_details.cached_tokens is not None
    ollama_final = {"model": SMOLLM, "messages": follow_up, "stream": False, "options": {"num_predict": 2}}
    assert "prompt_cached" not in httpx.post(f"{node.url}/api/chat", json=ollama_final, timeout=60).json()


def test_chat_completion_json_schema(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    response = client.chat.completions.create(
        model=SMOLLM,
        messages=[{"role": "user", "content": "What is 2+2? Reply as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": schema}},
        temperature=0,
        max_tokens=30,
    )
    assert isinstance(json.loads(response.choices[0].message.content or "")["answer"], int)


def test_chat_completion_tools_round_trip(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    response = client.chat.completions.create(
        model=SMOLLM,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=tools,
        temperature=0,
        max_tokens=20,
    )
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    if choice.message.tool_calls:
        call = choice.message.tool_calls[0]
        assert json.loads(call.function.arguments) is not None


def test_completions(client: openai.OpenAI) -> None:
    response = client.completions.create(
        model=GEMMA, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert response.object == "text_completion"
    assert response.choices[0].text.strip()
    assert response.usage is not None and response.usage.completion_tokens <= 6
    streamed = list(
        client.completions.create(
            model=GEMMA, prompt="The capital of France is", max_tokens=6, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == response.choices[0].text


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model=SMOLLM, input=["hello", "world"], encoding_format="float")
    assert [d.index for d in as_float.data] == [0, 1]
    assert len(as_float.data[0].embedding) == 576
    # The client asks for base64 by default and decodes it itself.
    default = client.embeddings.create(model=SMOLLM, input="hello")
    assert default.data[0].embedding == pytest.approx(as_float.data[0].embedding, abs=1e-5)
    assert as_float.usage.prompt_tokens > 0
    short = client.embeddings.create(model=SMOLLM, input="hello", dimensions=64)
    assert len(short.data[0].embedding) == 64


def test_bad_request_has_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=SMOLLM, messages=[], max_tokens=4)
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict) and "message" in body


def test_tool_choice_none_offers_no_tools(client: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    response = client.chat.completions.create(
        model=SMOLLM,
        messages=[{"role": "user", "content": "Say hi."}],
        tools=[tool],
        tool_choice="none",
        temperature=0,
        max_tokens=8,
    )
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason in ("stop", "length")
