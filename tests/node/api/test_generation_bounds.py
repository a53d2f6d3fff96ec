"""Every generation ends: ``max_predict`` bounds it, a reader that falls behind pauses it, a client
that leaves cancels it.

``num_predict: -1`` once generated forever, a client that stopped reading a stream left its
events piling up in the node, and a client that left a non-streaming request left its generation
running to its end.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from avocado.node.engine import Loaded
from tests.node.api.support import wait_until
from tests.support import SMOLLM, RunningNode, start_node

MAX_PREDICT = 12


@pytest.fixture(scope="module")
def bounded(home: Path) -> Iterator[RunningNode]:
    running = start_node(home, max_predict=MAX_PREDICT, send_buffer=4096)
    yield running
    running.stop()


@pytest.mark.parametrize("num_predict", [-1, -2, 1000, None])
def test_max_predict_bounds_every_generation(bounded: RunningNode, num_predict: int | None) -> None:
    options = {"temperature": 0} if num_predict is None else {"temperature": 0, "num_predict": num_predict}
    body = {"model": SMOLLM, "prompt": "Write a very long story.", "stream": False, "options": options}
    with bounded.client() as http:
        result = http.post("/api/generate", json=body).json()
    assert result["eval_count"] <= MAX_PREDICT
    assert result["eval_count"] == MAX_PREDICT or result["done_reason"] == "stop"


def test_max_predict_bounds_openai_max_tokens(bounded: RunningNode) -> None:
    body = {"model": SMOLLM, "messages": [{"role": "user", "content": "Write a very long story."}]}
    with bounded.client() as http:
        result = http.post("/v1/chat/completions", json={**body, "max_tokens": 5000, "temperature": 0})
    choice, usage = result.json()["choices"][0], result.json()["usage"]
    assert usage["completion_tokens"] <= MAX_PREDICT
    assert usage["completion_tokens"] == MAX_PREDICT or choice["finish_reason"] == "stop"


def test_num_predict_minus_two_fills_the_context_and_stops(node: RunningNode) -> None:
    """Ollama's "-2 = fill context": generation ends when the context is full, without shifting it."""
    options = {"num_predict": -2, "num_ctx": 256, "temperature": 0, "repeat_penalty": 1.0}
    body = {"model": SMOLLM, "prompt": "Count from 1 to 1000, one number a line.", "stream": False}
    with node.client() as http:
        result = http.post("/api/generate", json={**body, "options": options}).json()
    context = smollm(node).runner.n_ctx  # what llama.cpp gave: 256 is its smallest per sequence
    assert result["done_reason"] in ("length", "stop") and context == 256
    # The last token sampled ends it: the context holds every other one.
    assert result["prompt_eval_count"] + result["eval_count"] <= context + 1


def smollm(running: RunningNode) -> Loaded:
    return running.service.manager.loaded[SMOLLM]


def busy(running: RunningNode) -> int:
    slots = running.client().get("/api/avocado/status").json()["engine"].get("slots", {})
    return int(slots.get(SMOLLM, {}).get("busy", 0))


def raw_request(running: RunningNode, body: dict[str, object], path: str = "/api/generate") -> socket.socket:
    """A client that sends a request and then reads only when the test says so."""
    port = int(running.url.rsplit(":", 1)[1])
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n\r\n"
    client.sendall(head.encode() + data)
    return client


@pytest.mark.timeout(900)  # about 20 s alone; minutes on a loaded machine
def test_a_stream_nobody_reads_pauses_and_then_goes_on(home: Path) -> None:
    running = start_node(home, send_buffer=4096)
    try:
        # Past what the buffers on the way hold: asyncio's 64 KiB before uvicorn waits for the
        # socket (about 700 chunks), a few kilobytes in the kernel, and the node's backlog of events.
        count = 1200
        options = {"num_predict": count, "temperature": 0, "repeat_penalty": 1.0}
        body = {"model": SMOLLM, "prompt": "1\n2\n3\n4\n5\n", "raw": True, "options": options}
        client = raw_request(running, body)
        with client:
            wait_until(lambda: SMOLLM in running.service.manager.loaded, "the model to load")
            runner = smollm(running).runner
            wait_until(lambda: runner.paused_slots == 1, "the generation to pause", timeout=600)
            at_pause = sum(slot.generated for slot in runner.slots)
            assert at_pause < count  # it stopped once the reader was behind, not at its end
            response = b""
            while b'"done":true' not in response:
                chunk = client.recv(1 << 16)
                assert chunk, "the stream ended early"
                response += chunk
        final = json.loads(next(line for line in response.split(b"\r\n") if b'"done":true' in line))
        assert final["eval_count"] == count  # nothing lost to the pause
    finally:
        running.stop()


def test_a_client_that_leaves_a_whole_answer_cancels_it(node: RunningNode) -> None:
    options = {"num_predict": 5000, "temperature": 0, "repeat_penalty": 1.0}
    body = {"model": SMOLLM, "prompt": "Count from 1 to 10000.", "stream": False, "options": options}
    with node.client() as http:
        http.post("/api/generate", json={"model": SMOLLM})  # loaded
    client = raw_request(node, body)
    with client:
        wait_until(lambda: busy(node) == 1, "the generation to start")
    wait_until(lambda: busy(node) == 0, "the slot to be freed", timeout=30)
    with httpx.Client(base_url=node.url) as http:
        assert http.get("/").text == "Ollama is running"
