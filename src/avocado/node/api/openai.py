"""OpenAI-compatible routes, translated onto the same code paths as Ollama's own routes."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from avocado.node.api import docs
from avocado.node.api.deps import Service
from avocado.node.api.embed import embed_texts, normalize
from avocado.node.api.generate import PROMPT_CACHED, chat_events, generate_events
from avocado.node.api.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIMessage,
)
from avocado.node.api.schemas import ChatRequest, GenerateRequest, Message, Tool, ToolCall
from avocado.node.api.streaming import collect, prime, sse_response, unless_gone
from avocado.node.service import BadRequest, check_images
from avocado.node.store.errors import ModelNotFound

__all__ = ["router"]

router = APIRouter(tags=["openai"])
FINGERPRINT = "fp_avocado"


def _options(req: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    """OpenAI sampling fields as Ollama options; like Ollama, temperature and top_p default to 1."""
    options: dict[str, Any] = {
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
    }
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    if req.seed is not None:
        options["seed"] = req.seed
    if req.stop:
        options["stop"] = [req.stop] if isinstance(req.stop, str) else req.stop
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    if req.n not in (None, 1):
        raise BadRequest("n > 1 is not supported")
    return options


def _image(url: dict[str, Any] | str | None) -> str:
    link = url.get("url") if isinstance(url, dict) else url
    if not isinstance(link, str) or not link.startswith("data:") or "," not in link:
        raise BadRequest("image_url must be a base64 data URL")
    return link.split(",", 1)[1]


def _message(msg: OpenAIMessage, names: dict[str, str]) -> Message:
    text, images = "", []
    if isinstance(msg.content, str):
        text = msg.content
    elif msg.content:
        for part in msg.content:
            if part.type == "text":
                text += part.text or ""
            elif part.type == "image_url":
                images.append(_image(part.image_url))
            else:
                raise BadRequest(f"unsupported content part type {part.type!r}")
    calls = []
    for call in msg.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):  # a tool's arguments are named: '1' or '[]' name none
            raise BadRequest(f"tool call {call.function.name!r} has arguments that are not a JSON object")
        if call.id:
            names[call.id] = call.function.name
        calls.append(
            ToolCall.model_validate({"function": {"name": call.function.name, "arguments": arguments}})
        )
    role = "system" if msg.role == "developer" else msg.role
    tool_name = names.get(msg.tool_call_id or "") or msg.name
    return Message(
        role=role, content=text, images=images or None, tool_calls=calls or None, tool_name=tool_name
    )


def _format(req: ChatCompletionRequest) -> str | dict[str, Any] | None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    schema = (fmt.json_schema or {}).get("schema")
    if schema is None:  # OpenAI's schema is optional; without one, as on Ollama, nothing is enforced
        return None
    if not isinstance(schema, dict):
        raise BadRequest("response_format.json_schema.schema must be an object")
    return schema


def _openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "index": i,
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])},
        }
        for i, c in enumerate(calls)
    ]


def _head(prefix: str, model: str) -> dict[str, Any]:
    """The fields every completion object and chunk of one response share."""
    ident = f"{prefix}-{uuid.uuid4().hex[:24]}"
    return {"id": ident, "created": int(time.time()), "model": model, "system_fingerprint": FINGERPRINT}


def _wants_usage(req: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


def _usage(final: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = final.get("prompt_eval_count", 0), final.get("eval_count", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": final.get(PROMPT_CACHED, 0)},
    }


def _finish(final: dict[str, Any], had_calls: bool) -> str:
    if had_calls:
        return "tool_calls"
    return "length" if final.get("done_reason") == "length" else "stop"


@router.post("/v1/chat/completions", response_model=None, responses=docs.OPENAI_GENERATED)
async def chat_completions(req: ChatCompletionRequest, svc: Service, request: Request) -> Response:
    names: dict[str, str] = {}
    messages = [_message(m, names) for m in req.messages]
    if not messages:
        raise BadRequest("messages must not be empty")
    offer_tools = req.tools and req.tool_choice != "none"
    chat = ChatRequest(
        model=req.model,
        messages=messages,
        tools=[Tool.model_validate(t.model_dump()) for t in req.tools or []] if offer_tools else None,
        stream=bool(req.stream),
    )
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    gen = svc.prepare(req.model, _options(req, max_tokens), None, _format(req))
    for message in messages:
        check_images(message.images, gen.model)
    stream = await unless_gone(request, prime(chat_events(svc, chat, gen, cached=True)))
    head = _head("chatcmpl", req.model)
    if req.stream:
        return sse_response(_chat_chunks(stream, head, _wants_usage(req)), request.url.path)
    result = await unless_gone(request, collect(stream))
    reply: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        reply["tool_calls"] = _openai_tool_calls(result.tool_calls)
    finish = _finish(result.final, bool(result.tool_calls))
    choice = {"index": 0, "message": reply, "finish_reason": finish, "logprobs": None}
    body = {**head, "object": "chat.completion", "choices": [choice], "usage": _usage(result.final)}
    return JSONResponse(body)


async def _chat_chunks(
    stream: AsyncIterator[dict[str, Any]], head: dict[str, Any], include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    had_calls = False
    async for item in stream:
        chunk = {**head, "object": "chat.completion.chunk"}
        if not item["done"]:
            delta: dict[str, Any] = {"role": "assistant", "content": item["message"]["content"]}
            if calls := item["message"].get("tool_calls"):
                had_calls = True
                delta["tool_calls"] = _openai_tool_calls(calls)
            yield {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            continue
        finish = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": _finish(item, had_calls),
        }
        yield {**chunk, "choices": [finish]}
        if include_usage:
            yield {**chunk, "choices": [], "usage": _usage(item)}


@router.post("/v1/completions", response_model=None, responses=docs.OPENAI_GENERATED)
async def completions(req: CompletionRequest, svc: Service, request: Request) -> Response:
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if len(prompts) != 1:
        raise BadRequest("prompt must be a string or a list with exactly one string")
    gen = svc.prepare(req.model, _options(req, req.max_tokens), None, None)
    generate = GenerateRequest(model=req.model, prompt=prompts[0], suffix=req.suffix, stream=bool(req.stream))
    stream = await unless_gone(request, prime(generate_events(svc, generate, gen, cached=True)))
    head = _head("cmpl", req.model)
    if req.stream:
        return sse_response(_completion_chunks(stream, head, _wants_usage(req)), request.url.path)
    result = await unless_gone(request, collect(stream))
    finish = _finish(result.final, False)
    choice = {"text": result.text, "index": 0, "logprobs": None, "finish_reason": finish}
    body = {**head, "object": "text_completion", "choices": [choice], "usage": _usage(result.final)}
    return JSONResponse(body)


async def _completion_chunks(
    stream: AsyncIterator[dict[str, Any]], head: dict[str, Any], include_usage: bool
) -> AsyncIterator[dict[str, Any]]:
    async for item in stream:
        chunk = {**head, "object": "text_completion"}
        if not item["done"]:
            yield {
                **chunk,
                "choices": [{"text": item["response"], "index": 0, "logprobs": None, "finish_reason": None}],
            }
            continue
        yield {
            **chunk,
            "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": _finish(item, False)}],
        }
        if include_usage:
            yield {**chunk, "choices": [], "usage": _usage(item)}


def _encode(vector: list[float], encoding: str | None) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@router.post("/v1/embeddings", responses=docs.OPENAI_EMBEDDED)
async def embeddings(req: EmbeddingRequest, svc: Service, request: Request) -> dict[str, Any]:
    if isinstance(req.input, str):
        texts = [req.input]
    elif all(isinstance(item, str) for item in req.input):
        texts = [str(item) for item in req.input]
    else:
        raise BadRequest("input must be a string or a list of strings; token arrays are not supported")
    if not texts or any(t == "" for t in texts):
        raise BadRequest("input must not be empty")
    gen = svc.prepare(req.model, None, None, None)
    vectors, count, _ = await unless_gone(request, embed_texts(svc, gen, texts, truncate=True))
    if req.dimensions:
        vectors = [v[: req.dimensions] for v in vectors]
    data = [
        {"object": "embedding", "embedding": _encode(normalize(v), req.encoding_format), "index": i}
        for i, v in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


def _model_object(name: str, modified: float) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(modified), "owned_by": "library"}


@router.get("/v1/models", responses=docs.LISTED)
async def list_models(svc: Service) -> dict[str, Any]:
    models = svc.store.list()
    return {
        "object": "list",
        "data": [_model_object(m.name.display, m.modified_at.timestamp()) for m in models],
    }


@router.get("/v1/models/{model:path}", responses=docs.OPENAI_MODEL)
async def get_model(model: str, svc: Service) -> dict[str, Any]:
    try:
        stored = svc.store.get(model)
    except (ModelNotFound, ValueError):
        raise ModelNotFound(f"model '{model}' not found") from None
    return _model_object(stored.name.display, stored.modified_at.timestamp())
