"""The request path: routing by model, streams unbuffered, disconnects, failover, breakers, draining."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from avocado.discovery import DiscoveryWatcher, Registry
from avocado.gateway.nodes import NodePool
from tests.discovery.support import require_broker
from tests.gateway.conftest import SMOLLM_B
from tests.gateway.support import (
    RunningGateway,
    ScriptedAdmission,
    announcement,
    apply,
    self_signed,
    start_gateway,
    start_standin,
    wait_until,
)
from tests.support import GREEDY, SMOLLM, RunningNode, free_port, linked_home, start_node

OPTIONS = {**GREEDY, "num_predict": 4}
COUNTING = "1, 2, 3, 4, 5, 6,"  # raw and greedy, SmolLM2 counts on without ever stopping
STANDIN = "standin:1"


def generate(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "Hi", "stream": False, "options": OPTIONS, **fields}


@pytest.fixture
def twins(home: Path, tmp_path: Path) -> Iterator[list[RunningNode]]:
    """Two fresh nodes that both serve every bundled model (to be stopped or drained by the test)."""
    nodes = [start_node(linked_home(home, tmp_path / name)) for name in ("c", "d")]
    yield nodes
    for node in nodes:
        node.stop()


def test_requests_go_to_a_node_that_has_the_model(
    gateway: RunningGateway, node_a: RunningNode, node_b: RunningNode
) -> None:
    with gateway.client() as http:
        for model, node in ((SMOLLM, node_a), (SMOLLM_B, node_b), ("SmolLM2-B:135M", node_b)):
            response = http.post("/api/generate", json=generate(model))
            assert response.status_code == 200 and response.json()["done"]
            outcome = gateway.outcomes.find(response.headers["x-request-id"])
            assert outcome.node == node.url and outcome.model == model and outcome.attempts == 1


def test_request_ids_and_keys_between_client_gateway_and_node() -> None:
    standin = start_standin()
    pool = NodePool([f"{standin.url},node-secret-key"])
    gateway = start_gateway(pool)
    try:
        headers = {"Authorization": "Bearer the-clients-own-key", "X-Request-ID": "trace-1234"}
        response = httpx.post(f"{gateway.url}/api/generate", json=generate(STANDIN), headers=headers)
        assert response.status_code == 200 and response.headers["x-request-id"] == "trace-1234"
        path, seen = standin.standin.hits[-1]
        assert path == "/api/generate"
        assert seen["authorization"] == "Bearer node-secret-key" and seen["x-request-id"] == "trace-1234"
        assert seen["content-type"] == "application/json"
        listed = httpx.get(f"{gateway.url}/api/avocado/nodes").text
        assert "node-secret-key" not in listed and '"api_key":true' in listed
        response = httpx.post(f"{gateway.url}/api/generate", json=generate(STANDIN))
        assert len(response.headers["x-request-id"]) == 32
        assert standin.standin.hits[-1][1]["x-request-id"] == response.headers["x-request-id"]
    finally:
        gateway.stop()
        standin.stop()


def test_an_https_node(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    standin = start_standin(tls=(cert, key))
    trusting = start_gateway(NodePool([standin.url], tls=ssl.create_default_context(cafile=str(cert))))
    doubting = start_gateway(NodePool([standin.url], health_timeout=1))
    try:
        assert standin.url.startswith("https://")
        with httpx.stream("POST", f"{trusting.url}/api/generate", json={"model": STANDIN}) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
        assert response.status_code == 200 and lines[-1]["done"] and len(lines) == 4
        info = doubting.node_info(standin.url)
        assert info["healthy"] is False and "certificate" in info["last_error"].lower()
    finally:
        trusting.stop()
        doubting.stop()
        standin.stop()


def test_a_node_with_an_api_key(home: Path, tmp_path: Path) -> None:
    key = "node-only-key-0123456789"
    node = start_node(linked_home(home, tmp_path / "keyed"), api_key=key)
    gateway = start_gateway(NodePool([f"{node.url},{key}"]))
    try:
        with gateway.client() as http:
            assert SMOLLM in {m["name"] for m in http.get("/api/tags").json()["models"]}
            assert http.post("/api/generate", json=generate(SMOLLM)).json()["done"]
            assert key not in http.get("/api/avocado/nodes").text
    finally:
        gateway.stop()
        node.stop()


@pytest.mark.parametrize("path", ["/api/generate", "/v1/chat/completions"])
def test_streams_pass_through_unbuffered(path: str) -> None:
    standin = start_standin(lines=4, pause=0.5)
    gateway = start_gateway(NodePool([standin.url]))
    body = {"model": STANDIN, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        started = time.monotonic()
        arrivals = []
        with httpx.stream("POST", f"{gateway.url}{path}", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line:
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) >= 5
        assert arrivals[0] < 0.4 and arrivals[-1] > 1.9, arrivals  # each line as the node sent it
        outcome = gateway.outcomes.find(response.headers["x-request-id"])
        assert outcome.streamed and outcome.ttft_s is not None and outcome.ttft_s < 0.4
        assert (outcome.tokens_in, outcome.tokens_out) == ((5, 9) if path == "/api/generate" else (4, 6))
    finally:
        gateway.stop()
        standin.stop()


def test_a_real_stream_arrives_before_the_generation_ends(gateway: RunningGateway) -> None:
    body = {"model": SMOLLM, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 200}}
    with gateway.client() as http:
        started = time.monotonic()
        with http.stream("POST", "/api/generate", json=body) as response:
            lines = response.iter_lines()
            first = json.loads(next(lines))
            first_at = time.monotonic() - started
            rest = [json.loads(line) for line in lines if line]
        total = time.monotonic() - started
    assert not first["done"] and rest[-1]["done"] and rest[-1]["eval_count"] == 200
    assert first_at < 0.3 * total, (first_at, total)


def test_a_client_disconnect_stops_the_generation(node_a: RunningNode) -> None:
    admission = ScriptedAdmission()
    gateway = start_gateway(NodePool([node_a.url]), admission=admission)
    # Counting runs the full 3000 tokens (about a minute on two cores) unless the gateway lets go of it.
    body = {"model": SMOLLM, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 3000}}
    try:
        with (
            httpx.Client(base_url=gateway.url, timeout=60) as client,
            client.stream("POST", "/api/generate", json=body) as response,
        ):
            lines = response.iter_lines()
            for _ in range(3):
                next(lines)
        request_id = response.headers["x-request-id"]
        outcome = admission.outcome(request_id)
        assert (outcome.status, outcome.error, outcome.streamed) == (200, "cancelled", True)
        assert gateway.outcomes.find(request_id) == outcome
        manager = node_a.service.manager
        wait_until(lambda: manager.loaded[SMOLLM].in_use == 0, timeout=5, message="the node let go")
        assert gateway.pool.nodes[0].in_flight == 0
    finally:
        gateway.stop()


@pytest.mark.parametrize("path", ["/api/generate", "/v1/chat/completions"])
def test_a_stream_the_node_breaks_off_ends_with_an_error_line(path: str) -> None:
    standin = start_standin(mode="break")
    gateway = start_gateway(NodePool([standin.url]))
    body = {"model": STANDIN, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        with httpx.stream("POST", f"{gateway.url}{path}", json=body, timeout=30) as response:
            lines = [line for line in response.iter_lines() if line]
        assert response.status_code == 200
        if path == "/api/generate":
            assert len(lines) == 3 and "w1" in lines[1]  # two lines from the node, then the error
            error = json.loads(lines[-1])["error"]
            assert isinstance(error, str) and "failed" in error
        else:
            assert lines[-1] == "data: [DONE]"
            error = json.loads(lines[-2].removeprefix("data: "))["error"]
            assert error["type"] == "server_error" and "failed" in error["message"]
        outcome = gateway.outcomes.find(response.headers["x-request-id"])
        assert (outcome.status, outcome.error) == (200, "upstream")
        assert gateway.pool.nodes[0].breaker.failures == 1
    finally:
        gateway.stop()
        standin.stop()


def test_failures_before_the_first_byte_go_to_another_node() -> None:
    failing, working = start_standin(mode="fail"), start_standin()
    refused = f"http://127.0.0.1:{free_port()}"
    pool = NodePool([failing.url, working.url, refused], health_interval=60)
    gateway = start_gateway(pool)
    try:
        refused_node = pool.get(refused)
        assert refused_node is not None

        def as_if_it_had_been_up() -> None:
            refused_node.set_tags([{"name": STANDIN}])
            refused_node.healthy = True

        gateway.call(as_if_it_had_been_up)
        for _ in range(12):
            response = httpx.post(f"{gateway.url}/api/generate", json=generate(STANDIN))
            assert response.status_code == 200 and response.json()["response"] == "ok"
        outcomes = gateway.outcomes.outcomes[-12:]
        assert {o.node for o in outcomes} == {working.url} and max(o.attempts for o in outcomes) > 1
        assert failing.standin.model_hits() == 3  # then its breaker opened
        assert pool.get(failing.url).breaker.state == "open"
        assert pool.get(refused).breaker.state == "open"
    finally:
        gateway.stop()
        failing.stop()
        working.stop()


def test_the_breaker_opens_after_failures_and_recovers_after_its_cooldown() -> None:
    standin = start_standin(mode="fail")
    now = [1000.0]  # the breakers' clock, moved by the test: the cooldown passes without waiting
    pool = NodePool(
        [standin.url], breaker_failures=3, breaker_cooldown=10.0, health_interval=60, clock=lambda: now[0]
    )
    gateway = start_gateway(pool)
    url = f"{gateway.url}/v1/chat/completions"
    body = {"model": STANDIN, "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(3):  # the node's own error, passed on while nothing better exists
            response = httpx.post(url, json=body)
            assert response.status_code == 500 and response.json()["error"]["message"] == "stand-in failure"
        assert gateway.node_info(standin.url)["breaker"] == "open"
        blocked = httpx.post(url, json=body)
        assert (
            blocked.status_code == 503 and "can take requests right now" in blocked.json()["error"]["message"]
        )
        assert standin.standin.model_hits() == 3

        now[0] += 9.9
        assert httpx.post(url, json=body).status_code == 503  # not yet
        now[0] += 0.1  # the cooldown passed: one probe, which fails and opens the breaker again
        assert httpx.post(url, json=body).status_code == 500
        assert httpx.post(url, json=body).status_code == 503
        assert standin.standin.model_hits() == 4

        standin.standin.mode = "ok"
        now[0] += 10
        with httpx.stream("POST", url, json={**body, "stream": True}) as response:
            assert response.status_code == 200 and response.read().endswith(b"data: [DONE]\n\n")
        info = gateway.node_info(standin.url)
        assert (info["breaker"], info["consecutive_failures"]) == ("closed", 0)
    finally:
        gateway.stop()
        standin.stop()


def test_health_checks_take_a_failing_node_out_and_back() -> None:
    standin = start_standin(tags_status=500)
    pool = NodePool([standin.url], health_interval=0.2, breaker_failures=100)
    gateway = start_gateway(pool)
    try:
        assert gateway.node_info(standin.url)["healthy"] is False
        response = httpx.post(f"{gateway.url}/api/generate", json=generate(STANDIN))
        assert response.status_code == 503 and response.json() == {"error": "no healthy node is available"}
        standin.standin.tags_status = 200
        wait_until(lambda: gateway.node_info(standin.url)["healthy"], timeout=5, message="healthy again")
        assert httpx.post(f"{gateway.url}/api/generate", json=generate(STANDIN)).status_code == 200
    finally:
        gateway.stop()
        standin.stop()


def test_a_node_killed_under_load_costs_no_request(twins: list[RunningNode]) -> None:
    victim, survivor = twins
    pool = NodePool([victim.url, survivor.url], health_interval=0.5)
    gateway = start_gateway(pool)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with gateway.client() as http:
            while not stop.is_set():
                body = generate(SMOLLM, options={**GREEDY, "num_predict": 2})
                statuses.append(http.post("/api/generate", json=body).status_code)

    workers = [threading.Thread(target=load) for _ in range(6)]
    node = pool.get(victim.url)
    assert node is not None
    try:
        for worker in workers:
            worker.start()
        wait_until(lambda: node.requests >= 6 and len(statuses) >= 6, timeout=60, message="load on both")
        victim.stop()  # graceful: what it has started, it finishes; then its port is closed
        wait_until(lambda: not node.healthy, timeout=30, message="a health check takes the dead node out")
        routed, answered = node.requests, len(statuses)
        wait_until(lambda: len(statuses) >= answered + 30, timeout=120, message="more load served")
        assert node.requests == routed  # once taken out, it gets nothing new
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        assert statuses and set(statuses) == {200}, statuses
        info = gateway.node_info(victim.url)
        assert info["healthy"] is False or info["breaker"] == "open"
    finally:
        stop.set()
        gateway.stop()


def test_draining_and_departing_nodes_finish_what_they_started(twins: list[RunningNode]) -> None:
    old, new = twins
    registry = Registry()
    pool = NodePool(registry=registry, health_interval=0.5)
    gateway = start_gateway(pool)
    body = {"model": SMOLLM, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 120}}
    try:
        apply(gateway, registry, announcement("old", old.url, 1, models=[SMOLLM]))
        with gateway.client() as http, http.stream("POST", "/api/generate", json=body) as stream:
            lines = stream.iter_lines()
            assert not json.loads(next(lines))["done"]
            # The node is told to drain (it would announce that); the gateway hears it from discovery.
            assert httpx.post(f"{old.url}/api/avocado/drain").json() == {"status": "draining"}
            apply(gateway, registry, announcement("old", old.url, 2, status="draining", models=[SMOLLM]))
            apply(gateway, registry, announcement("new", new.url, 1, models=[SMOLLM]))
            wait_until(lambda: gateway.node_info("new")["latency_ms"] is not None, message="new node checked")
            for _ in range(4):
                response = http.post("/api/generate", json=generate(SMOLLM))
                assert gateway.outcomes.find(response.headers["x-request-id"]).node == "new"
            assert gateway.node_info("old")["status"] == "draining"
            # Then it leaves: still listed while its stream runs, gone once that ended.
            apply(gateway, registry, announcement("old", old.url, 3, status="offline"))
            assert gateway.node_info("old")["status"] == "offline"
            rest = [json.loads(line) for line in lines if line]
        assert rest[-1]["done"] and rest[-1]["eval_count"] == 120
        wait_until(
            lambda: (
                [n["name"] for n in httpx.get(f"{gateway.url}/api/avocado/nodes").json()["nodes"]] == ["new"]
            ),
            timeout=5,
            message="the departed node removed",
        )
    finally:
        gateway.stop()


def test_nodes_found_on_the_broker(home: Path, tmp_path: Path) -> None:
    broker = require_broker()
    node = start_node(linked_home(home, tmp_path / "announced"), amqp_url=broker, announce_interval=60)
    with node.client() as http:
        service_id = http.get("/api/avocado/status").json()["service_id"]
    registry = Registry()

    @contextlib.asynccontextmanager
    async def watching(app: FastAPI) -> AsyncIterator[None]:
        async with DiscoveryWatcher(broker, registry):  # its probe makes every node announce itself
            yield

    gateway = start_gateway(NodePool(registry=registry, health_interval=0.5), lifespan=watching)
    try:
        wait_until(lambda: gateway.pool.get(service_id) is not None, timeout=10, message="node discovered")
        info = gateway.node_info(service_id)
        assert (info["source"], info["url"], info["status"]) == ("discovery", node.url, "online")
        with gateway.client() as http:
            assert SMOLLM in {m["name"] for m in http.get("/api/tags").json()["models"]}
            response = http.post("/api/generate", json=generate(SMOLLM))
            assert gateway.outcomes.find(response.headers["x-request-id"]).node == service_id
            assert http.post(f"{node.url}/api/avocado/drain").json() == {"status": "draining"}
            wait_until(
                lambda: gateway.node_info(service_id)["status"] == "draining", message="draining heard"
            )
            refused = http.post("/api/generate", json=generate(SMOLLM))
            assert refused.status_code == 503 and "draining" in refused.json()["error"]
        node.stop()  # announces offline as it goes
        wait_until(lambda: gateway.pool.get(service_id) is None, timeout=10, message="node gone")
    finally:
        gateway.stop()
        node.stop()


def test_admission_refusals_and_model_restrictions() -> None:
    standin = start_standin()
    admission = ScriptedAdmission()
    gateway = start_gateway(NodePool([standin.url]), admission=admission)
    try:
        with gateway.client() as http:
            refused = http.post("/api/generate", json=generate(STANDIN), headers={"x-test-refuse": "429"})
            assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
            assert refused.json() == {"error": "refused by the test"}
            refused = http.post(
                "/v1/chat/completions",
                json={"model": STANDIN, "messages": []},
                headers={"x-test-refuse": "401"},
            )
            assert refused.status_code == 401 and "retry-after" not in refused.headers
            assert refused.json()["error"]["code"] == "invalid_api_key"
            outcome = gateway.outcomes.find(refused.headers["x-request-id"])
            assert (outcome.status, outcome.error) == (401, "refused")

            other_only = {"x-test-models": "other:1"}
            forbidden = http.post("/api/generate", json=generate(STANDIN), headers=other_only)
            assert forbidden.status_code == 403 and "standin:1" in forbidden.json()["error"]
            allowed = http.post("/api/generate", json=generate(STANDIN), headers={"x-test-models": STANDIN})
            assert allowed.status_code == 200
            bad = http.post("/api/generate", content=b"{nope")
            assert bad.status_code == 400
        assert admission.admitted == [STANDIN, STANDIN, None]  # refused ones never got a ticket
        finished = {o.request_id: o for _, o in admission.finished}
        assert finished[forbidden.headers["x-request-id"]].status == 403
        assert finished[allowed.headers["x-request-id"]].tokens_out == 3
        assert finished[bad.headers["x-request-id"]].error == "bad_request"
        assert standin.standin.model_hits() == 1
    finally:
        gateway.stop()
        standin.stop()
