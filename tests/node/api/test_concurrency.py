"""Concurrent requests, the bounded queue, client disconnects and the API key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import ollama
import pytest

from tests.support import GEMMA, SMOLLM, RunningNode, start_node

PROMPTS = ["Name a fruit.", "Name a country.", "Count to three.", "Say a greeting."]


def generate(url: str, prompt: str, num_predict: int = 16) -> str:
    body = {
        "model": SMOLLM,
        "prompt": prompt,
        "stream": False,
        "options": {"temperature": 0, "num_predict": num_predict},
    }
    response = httpx.post(f"{url}/api/generate", json=body, timeout=120)
    response.raise_for_status()
    return str(response.json()["response"])


# Raw prompts the model continues with confidence. Chat prompts share the template's first tokens,
# whose cached KV (computed in another batch) is reused across requests: like llama-server's prompt
# cache, that is not bit-identical, and a greedy near-tie late in an answer can then go either way.
SEQUENCES = {
    "1, 2, 3, 4, 5,": "6, 7",
    "a, b, c, d,": "e, f",
    "Monday, Tuesday, Wednesday,": "Thursday",
    "January, February, March,": "April",
}


def raw_generate(url: str, prompt: str) -> str:
    body = {
        "model": SMOLLM,
        "prompt": prompt,
        "raw": True,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 12},
    }
    response = httpx.post(f"{url}/api/generate", json=body, timeout=120)
    response.raise_for_status()
    return str(response.json()["response"])


def test_concurrent_requests_do_not_corrupt_each_other(node: RunningNode) -> None:
    prompts = list(SEQUENCES)
    alone = [raw_generate(node.url, p) for p in prompts]
    assert all(SEQUENCES[p] in answer for p, answer in zip(prompts, alone, strict=True)), alone
    with ThreadPoolExecutor(max_workers=len(prompts) * 2) as pool:
        together = list(pool.map(lambda p: raw_generate(node.url, p), prompts * 2))
    assert together == alone * 2


@pytest.fixture
def small_queue_node(home: Path) -> Iterator[RunningNode]:
    running = start_node(home, max_queue=1, parallel=1)
    yield running
    running.stop()


def test_full_queue_answers_503(small_queue_node: RunningNode) -> None:
    url = small_queue_node.url
    generate(url, "warm up", 1)
    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = [
            pool.submit(
                httpx.post,
                f"{url}/api/generate",
                json={"model": SMOLLM, "prompt": p, "stream": False, "options": {"num_predict": 48}},
                timeout=120,
            )
            for p in [*PROMPTS, "one more"]
        ]
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert "maximum pending requests exceeded" in busy.json()["error"]
    assert generate(url, "still there?", 2)


def test_disconnect_mid_stream_stops_generation(node: RunningNode) -> None:
    # Greedy counting never ends by itself: without the cancel it would run all 3000 tokens (~30 s).
    options = {"num_predict": 3000, "temperature": 0}
    body = {"model": SMOLLM, "prompt": "1, 2, 3, 4, 5, 6,", "raw": True, "options": options}
    with (
        httpx.Client(base_url=node.url, timeout=60) as client,
        client.stream("POST", "/api/generate", json=body) as r,
    ):
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
    # 3000 tokens would take tens of seconds; a cancelled generation frees the model at once.
    started = time.monotonic()
    assert generate(node.url, "Hi", 2)
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while node.service.manager.loaded[SMOLLM].in_use and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.service.manager.loaded[SMOLLM].in_use == 0


@pytest.fixture
def keyed_node(home: Path) -> Iterator[RunningNode]:
    running = start_node(home, api_key="s3cret-key-for-tests")
    yield running
    running.stop()


def test_api_key_is_required(keyed_node: RunningNode) -> None:
    url = keyed_node.url
    assert httpx.get(url).text == "Ollama is running"
    assert httpx.head(url).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-key-for-tests"}):
        response = httpx.get(f"{url}/api/tags", headers=headers)
        assert response.status_code == 401 and "API key" in response.json()["error"]
    openai_style = httpx.get(f"{url}/v1/models")
    assert openai_style.status_code == 401 and openai_style.json()["error"]["code"] == "invalid_api_key"
    client = ollama.Client(host=url, headers={"Authorization": "Bearer s3cret-key-for-tests"})
    assert SMOLLM in {m.model for m in client.list().models}


def test_cors_allows_local_origins_only(node: RunningNode) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    local = httpx.options(f"{node.url}/api/chat", headers={"Origin": "http://localhost:3000", **preflight})
    assert local.status_code == 200
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    foreign = httpx.options(f"{node.url}/api/chat", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in foreign.headers


@pytest.fixture
def one_model_node(home: Path) -> Iterator[RunningNode]:
    running = start_node(home, max_loaded_models=1)
    yield running
    running.stop()


def test_least_recently_used_model_is_evicted(one_model_node: RunningNode) -> None:
    client = ollama.Client(host=one_model_node.url)
    client.generate(SMOLLM, "Hi", options={"num_predict": 1})
    assert [m.model for m in client.ps().models] == [SMOLLM]
    client.generate(GEMMA, "Hi", options={"num_predict": 1})
    assert [m.model for m in client.ps().models] == [GEMMA]


@pytest.fixture
def small_memory_node(home: Path) -> Iterator[RunningNode]:
    running = start_node(home, max_memory="50MB")
    yield running
    running.stop()


def test_model_over_the_memory_budget_is_refused(small_memory_node: RunningNode) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "stream": False}
    response = httpx.post(f"{small_memory_node.url}/api/generate", json=body, timeout=60)
    assert response.status_code == 500
    message = response.json()["error"]
    assert "needs about" in message and "--max-memory" in message
    assert httpx.get(f"{small_memory_node.url}/api/tags").status_code == 200


def test_the_prompt_cache_counts_in_the_memory_budget(home: Path) -> None:
    body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}}
    sizes = []
    for cache in ("0", "64MiB"):
        node = start_node(home, max_memory="700MB", prompt_cache=cache)
        try:
            httpx.post(f"{node.url}/api/generate", json=body, timeout=60).raise_for_status()
            sizes.append(ollama.Client(host=node.url).ps().models[0].size)
        finally:
            node.stop()
    assert sizes[1] - sizes[0] == 64 << 20  # /api/ps shows what the model may take, cache included
    node = start_node(home, max_memory="700MB", prompt_cache="512MiB")  # fits without the cache only
    try:
        response = httpx.post(f"{node.url}/api/generate", json=body, timeout=60)
        assert response.status_code == 500
        message = response.json()["error"]
        assert "of prompt cache" in message and "--max-memory" in message
    finally:
        node.stop()


def test_a_model_the_engine_gave_up_on_is_loaded_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = start_node(home)  # a node of its own: this test breaks its model
    try:
        assert generate(node.url, PROMPTS[0])
        runner = node.service.manager.loaded[SMOLLM].runner

        def fail() -> None:
            raise RuntimeError("admission failed")

        monkeypatch.setattr(runner, "_admit", fail)
        body = {"model": SMOLLM, "prompt": PROMPTS[1], "stream": False}
        refused = httpx.post(f"{node.url}/api/generate", json=body, timeout=120)
        assert refused.status_code == 500 and "unloaded" in refused.json()["error"]
        assert generate(node.url, PROMPTS[1])  # the next request loads the model again
        assert node.service.manager.loaded[SMOLLM].runner is not runner
    finally:
        node.stop()
