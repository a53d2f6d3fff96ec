"""``POST /api/generate`` and ``POST /api/chat``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from avocado.node.api import docs
from avocado.node.api.deps import Service
from avocado.node.api.schemas import ChatRequest, GenerateRequest, Message
from avocado.node.api.streaming import collect, ndjson_response, now_iso, prime, unless_gone
from avocado.node.engine import Done, Text
from avocado.node.service import (
    OFF_LOOP_CHARS,
    BadRequest,
    Generation,
    NodeService,
    check_images,
    check_think,
)
from avocado.node.templates.gotemplate import Limits
from avocado.node.tools import ToolCallCollector

__all__ = ["PROMPT_CACHED", "chat_events", "generate_events", "router"]

router = APIRouter(tags=["ollama"])


# Prompt tokens found in KV memory already: not in Ollama's final chunk, but the OpenAI routes,
# which ask for it, report it as ``usage.prompt_tokens_details.cached_tokens``.
PROMPT_CACHED = "prompt_cached"


def final_counters(done: Done, started: int, load_ns: int, *, cached: bool = False) -> dict[str, Any]:
    """The last chunk's counters, in Ollama's names; durations in nanoseconds."""
    counters = {
        "done_reason": done.reason,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_ns,
        "prompt_eval_count": done.prompt_eval_count,
        "prompt_eval_duration": done.prompt_eval_duration,
        "eval_count": done.eval_count,
        "eval_duration": done.eval_duration,
    }
    if cached:
        counters[PROMPT_CACHED] = done.prompt_cached
    return counters


async def _load_only(svc: NodeService, gen: Generation, body: dict[str, Any]) -> dict[str, Any]:
    """An empty prompt loads the model; with ``keep_alive: 0`` it unloads it."""
    if gen.keep_alive == 0:
        await svc.manager.unload(gen.model.name)
        reason = "unload"
    else:
        async with svc.manager.use(gen.model, gen.num_ctx, gen.keep_alive, gen.gpu):
            reason = "load"
    return {"model": gen.model.name, "created_at": now_iso(), **body, "done": True, "done_reason": reason}


async def generate_events(
    svc: NodeService, req: GenerateRequest, gen: Generation, *, cached: bool = False
) -> AsyncIterator[dict[str, Any]]:
    started = time.perf_counter_ns()
    name = gen.model.name
    async with svc.manager.use(gen.model, gen.num_ctx, gen.keep_alive, gen.gpu) as loaded:
        load_ns = time.perf_counter_ns() - started
        svc.check_context(loaded, req.context)
        prompt = req.prompt or ""
        if req.raw:
            text = prompt
        else:

            def render(limits: Limits) -> str:  # a request's own template is parsed off the loop too
                builder = svc.builder(loaded, req.template)
                if req.suffix and not builder.supports_insert:
                    raise BadRequest(f"{gen.model.stored.name.full} does not support insert")
                return builder.generate(prompt, req.system, req.suffix, limits)

            text = await svc.render(render, inline=not req.template and len(prompt) < OFF_LOOP_CHARS)
        tokens = await svc.prompt_tokens(loaded, text, req.context, gen.num_keep)
        async for event in svc.run(gen, loaded, tokens):
            if isinstance(event, Text):
                yield {"model": name, "created_at": now_iso(), "response": event.text, "done": False}
            else:
                final = {"model": name, "created_at": now_iso(), "response": "", "done": True}
                final.update(final_counters(event, started, load_ns, cached=cached))
                if not req.raw:
                    final["context"] = event.context
                yield final


def _nothing_to_generate(req: GenerateRequest) -> bool:
    """An empty prompt loads the model, as on Ollama: unless a system prompt, a template or a suffix
    makes one; in raw mode the prompt is all the model sees, so nothing does."""
    if req.prompt:
        return False
    return bool(req.raw) or not (req.suffix or req.template or req.system)


@router.post("/api/generate", response_model=None, responses=docs.GENERATED)
async def generate(req: GenerateRequest, svc: Service, request: Request) -> Response:
    gen = svc.prepare(req.model_name, req.options, req.keep_alive, req.format)
    check_images(req.images, gen.model)
    check_think(req.think, gen.model.name)
    if _nothing_to_generate(req):
        return JSONResponse(await _load_only(svc, gen, {"response": ""}))
    stream = await unless_gone(request, prime(generate_events(svc, req, gen)))
    if req.stream is not False:
        return ndjson_response(stream, request.url.path)
    result = await unless_gone(request, collect(stream))
    return JSONResponse({**result.final, "response": result.text})


def message_dict(message: Message) -> dict[str, Any]:
    """A chat message as the template sees it (Ollama's JSON field names)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_name:
        out["tool_name"] = message.tool_name
    if message.images:
        out["images"] = message.images
    return out


async def chat_events(
    svc: NodeService, req: ChatRequest, gen: Generation, *, cached: bool = False
) -> AsyncIterator[dict[str, Any]]:
    started = time.perf_counter_ns()
    name = gen.model.name
    async with svc.manager.use(gen.model, gen.num_ctx, gen.keep_alive, gen.gpu) as loaded:
        load_ns = time.perf_counter_ns() - started
        builder = svc.builder(loaded)
        tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
        if tools and not builder.supports_tools:
            raise BadRequest(f"{gen.model.stored.name.full} does not support tools")
        messages = [message_dict(m) for m in req.messages or []]
        tokens = await svc.chat_tokens(loaded, builder, messages, tools, gen.num_keep)
        collector = ToolCallCollector(enabled=bool(tools))

        def chunk(content: str, **extra: Any) -> dict[str, Any]:
            message: dict[str, Any] = {"role": "assistant", "content": content, **extra}
            return {"model": name, "created_at": now_iso(), "message": message, "done": False}

        async for event in svc.run(gen, loaded, tokens):
            if isinstance(event, Text):
                if content := collector.feed(event.text):
                    yield chunk(content)
                continue
            content, calls = collector.finish()
            if content:
                yield chunk(content)
            if calls:
                yield chunk("", tool_calls=calls)
            final = chunk("")
            final["done"] = True
            final.update(final_counters(event, started, load_ns, cached=cached))
            yield final


@router.post("/api/chat", response_model=None, responses=docs.GENERATED)
async def chat(req: ChatRequest, svc: Service, request: Request) -> Response:
    gen = svc.prepare(req.model_name, req.options, req.keep_alive, req.format)
    check_think(req.think, gen.model.name)
    for message in req.messages or []:
        check_images(message.images, gen.model)
    if not req.messages:
        body = {"message": {"role": "assistant", "content": ""}}
        return JSONResponse(await _load_only(svc, gen, body))
    stream = await unless_gone(request, prime(chat_events(svc, req, gen)))
    if req.stream is not False:
        return ndjson_response(stream, request.url.path)
    result = await unless_gone(request, collect(stream))
    reply: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        reply["tool_calls"] = result.tool_calls
    return JSONResponse({**result.final, "message": reply})
