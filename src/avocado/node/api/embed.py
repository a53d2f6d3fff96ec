"""``POST /api/embed`` and the older ``POST /api/embeddings``."""

from __future__ import annotations

import asyncio
import math
import time

from fastapi import APIRouter, Request

from avocado.node.api import docs
from avocado.node.api.deps import Service
from avocado.node.api.schemas import EmbeddingsRequest, EmbedRequest
from avocado.node.api.streaming import unless_gone
from avocado.node.engine.llama import LlamaModel
from avocado.node.service import OFF_LOOP_CHARS, BadRequest, Generation, NodeService

__all__ = ["embed_texts", "normalize", "router"]

router = APIRouter(tags=["ollama"])


def normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


async def embed_texts(
    svc: NodeService, gen: Generation, texts: list[str], *, truncate: bool
) -> tuple[list[list[float]], int, int]:
    """Embeddings of ``texts``; returns (vectors, prompt tokens, load nanoseconds)."""
    started = time.perf_counter_ns()
    async with svc.manager.use(gen.model, gen.num_ctx, gen.keep_alive, gen.gpu) as loaded:
        load_ns = time.perf_counter_ns() - started
        llama, n_ctx = loaded.runner.model, loaded.runner.n_ctx
        if sum(len(text) for text in texts) < OFF_LOOP_CHARS:
            inputs = _tokenize(llama, n_ctx, texts, truncate)
        else:  # a large batch (documents for a RAG index) must not stall every other stream
            inputs = await asyncio.to_thread(_tokenize, llama, n_ctx, texts, truncate)
        vectors = await svc.manager.embed(loaded, inputs) if inputs else []
    return vectors, sum(len(t) for t in inputs), load_ns


def _tokenize(llama: LlamaModel, n_ctx: int, texts: list[str], truncate: bool) -> list[list[int]]:
    inputs = []
    for text in texts:
        tokens = llama.tokenize(text)
        if len(tokens) > n_ctx:
            if not truncate:
                raise BadRequest("input length exceeds the context length")
            tokens = tokens[:n_ctx]
        if not tokens:
            raise BadRequest("input is empty after tokenization")
        inputs.append(tokens)
    return inputs


@router.post("/api/embed", responses=docs.EMBEDDED)
async def embed(req: EmbedRequest, svc: Service, request: Request) -> dict[str, object]:
    started = time.perf_counter_ns()
    gen = svc.prepare(req.model_name, req.options, req.keep_alive, None)
    texts = [req.input] if isinstance(req.input, str) else list(req.input or [])
    texts = [t for t in texts if t != ""] if isinstance(req.input, str) else texts
    if any(t == "" for t in texts):
        raise BadRequest("input must not contain empty strings")
    work = embed_texts(svc, gen, texts, truncate=req.truncate is not False)
    vectors, count, load_ns = await unless_gone(request, work)
    if req.dimensions:
        vectors = [v[: req.dimensions] for v in vectors]
    return {
        "model": gen.model.name,
        "embeddings": [normalize(v) for v in vectors],
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_ns,
        "prompt_eval_count": count,
    }


@router.post("/api/embeddings", responses=docs.EMBEDDED)
async def embeddings(req: EmbeddingsRequest, svc: Service) -> dict[str, object]:
    gen = svc.prepare(req.model_name, req.options, req.keep_alive, None)
    if not req.prompt:
        return {"embedding": []}
    vectors, _, _ = await embed_texts(svc, gen, [req.prompt], truncate=True)
    return {"embedding": vectors[0]}
