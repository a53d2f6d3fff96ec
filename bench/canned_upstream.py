"""A node stand-in that answers instantly (or at a fixed token pace) with canned Ollama/OpenAI bodies.

    .venv/bin/python bench/canned_upstream.py PORT [--pace-ms 10] [--chunks 20] [--answer-ms 0]

For measuring a proxy in front of it: there is no model, so what a benchmark sees is the proxy's own
cost. Plain ASGI on uvicorn, no framework. Serves ``GET /`` and ``GET /api/tags`` (one model,
``canned:latest``), and ``POST /api/chat``, ``/api/generate`` and ``/v1/chat/completions``: without
``"stream": true`` an answer at once (or after ``--answer-ms``, as a model would take); with it,
``--chunks`` chunks ``--pace-ms`` apart (with ``--stamp`` each piece says when it left).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODEL = "canned:latest"
TAGS = json.dumps(
    {
        "models": [
            {
                "name": MODEL,
                "model": MODEL,
                "modified_at": "2026-11-22T00:00:00Z",
                "size": 1,
                "digest": "0" * 64,
                "details": {
                    "format": "gguf",
                    "family": "canned",
                    "parameter_size": "0",
                    "quantization_level": "-",
                },
            }
        ]
    }
).encode()
OLLAMA_DONE = {
    "model": MODEL,
    "created_at": "2026-11-22T00:00:00Z",
    "done": True,
    "done_reason": "stop",
    "total_duration": 1,
    "load_duration": 0,
    "prompt_eval_count": 8,
    "prompt_eval_duration": 1,
    "eval_count": 4,
    "eval_duration": 1,
}


class Canned:
    def __init__(self, pace_ms: float, chunks: int, answer_ms: float = 0.0, stamp: bool = False) -> None:
        self.pace = pace_ms / 1000
        self.chunks = chunks
        self.answer = answer_ms / 1000
        self.stamp = stamp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if scope["method"] == "GET":
            if path == "/":
                await self._send(send, 200, "text/plain", b"Ollama is running")
            else:
                await self._send(send, 200, "application/json", TAGS)
            return
        request = json.loads(body or b"{}")
        openai = path.startswith("/v1/")
        if request.get("stream") is True or (openai and request.get("stream")):
            await self._stream(send, path, openai)
        else:
            if self.answer:
                await asyncio.sleep(self.answer)
            await self._send(send, 200, "application/json", self._whole(path, openai))

    def _whole(self, path: str, openai: bool) -> bytes:
        if openai:
            return json.dumps(
                {
                    "id": "chatcmpl-canned",
                    "object": "chat.completion",
                    "created": 1795300000,
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "canned"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
                }
            ).encode()
        if path == "/api/generate":
            return json.dumps({**OLLAMA_DONE, "response": "canned"}).encode()
        return json.dumps({**OLLAMA_DONE, "message": {"role": "assistant", "content": "canned"}}).encode()

    async def _stream(self, send: Send, path: str, openai: bool) -> None:
        kind = "text/event-stream" if openai else "application/x-ndjson"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind.encode())]}
        )
        for index in range(self.chunks):
            await asyncio.sleep(self.pace)
            # stamped: the wall-clock time it left, so a client can tell each piece's delay
            piece = f"t{index}@{time.time():.6f} " if self.stamp else f"t{index} "
            if openai:
                chunk = {
                    "id": "chatcmpl-canned",
                    "object": "chat.completion.chunk",
                    "created": 1795300000,
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                line = f"data: {json.dumps(chunk)}\n\n"
            elif path == "/api/generate":
                line = json.dumps({"model": MODEL, "response": piece, "done": False}) + "\n"
            else:
                line = (
                    json.dumps(
                        {"model": MODEL, "message": {"role": "assistant", "content": piece}, "done": False}
                    )
                    + "\n"
                )
            await send({"type": "http.response.body", "body": line.encode(), "more_body": True})
        if openai:
            tail = b"data: [DONE]\n\n"
        else:
            tail = (
                json.dumps({**OLLAMA_DONE, "message": {"role": "assistant", "content": ""}}) + "\n"
            ).encode()
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    @staticmethod
    async def _send(send: Send, status: int, kind: str, body: bytes) -> None:
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--pace-ms", type=float, default=10.0, help="time between streamed chunks")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per streamed answer")
    parser.add_argument("--answer-ms", type=float, default=0.0, help="time before a whole answer")
    parser.add_argument("--stamp", action="store_true", help="streamed pieces carry the time they left")
    args = parser.parse_args()
    uvicorn.run(
        Canned(args.pace_ms, args.chunks, args.answer_ms, args.stamp),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
