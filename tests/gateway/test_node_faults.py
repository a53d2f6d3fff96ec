"""What counts against a node: its faults (no answer, a stall, 500/502) do; a busy node's 503, a client's
mistake and a key the node refuses do not open its breaker. A wedged node never holds a request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from avocado.gateway.nodes import NodePool
from tests.gateway.support import RunningGateway, RunningStandIn, start_gateway, start_standin, wait_until

STANDIN = "standin:1"
CLIENT_TIMEOUT = 20.0  # far above the timeouts under test: a hang fails the test instead of passing it


def generate(**fields: Any) -> dict[str, Any]:
    return {"model": STANDIN, "prompt": "Hi", "stream": False, **fields}


@pytest.fixture
def standins() -> Iterator[list[RunningStandIn]]:
    """Stand-ins the test starts (``standins.append(start_standin(...))``), stopped at its end."""
    started: list[RunningStandIn] = []
    yield started
    for standin in started:
        standin.stop()


def gateway_over(standins: list[RunningStandIn], **pool: Any) -> RunningGateway:
    return start_gateway(NodePool([s.url for s in standins], health_interval=60, **pool))


def test_a_busy_node_is_tried_elsewhere_and_keeps_its_breaker_closed(standins: list[RunningStandIn]) -> None:
    busy, working = start_standin(mode="busy"), start_standin()
    standins += [busy, working]
    gateway = gateway_over(standins, breaker_failures=3)
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            for _ in range(12):
                response = http.post("/api/generate", json=generate())
                assert response.status_code == 200 and response.json()["response"] == "ok"
        # Busy answers are not failures: the busy node keeps getting its turn (a breaker would have
        # stopped it after three).
        assert busy.standin.model_hits() > 3
        info = gateway.node_info(busy.url)
        assert (info["breaker"], info["consecutive_failures"], info["healthy"]) == ("closed", 0, True)
    finally:
        gateway.stop()


def test_a_lone_busy_node_answers_its_own_503_and_client_errors_pass_straight_back(
    standins: list[RunningStandIn],
) -> None:
    busy = start_standin(mode="busy")
    standins.append(busy)
    gateway = gateway_over(standins, breaker_failures=2)
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            for _ in range(5):
                response = http.post("/api/generate", json=generate())
                assert response.status_code == 503 and response.json() == {"error": "stand-in busy"}
                assert response.headers["retry-after"] == "7"
            assert busy.standin.model_hits() == 5
            assert gateway.node_info(busy.url)["breaker"] == "closed"

            busy.standin.mode = "reject"
            response = http.post("/api/generate", json=generate())
            assert response.status_code == 400 and response.json() == {"error": "stand-in reject"}
            assert busy.standin.model_hits() == 6  # not tried again, on this node or another
            assert gateway.outcomes.find(response.headers["x-request-id"]).attempts == 1
            assert gateway.node_info(busy.url)["breaker"] == "closed"
    finally:
        gateway.stop()


def test_node_faults_still_open_the_breaker(standins: list[RunningStandIn]) -> None:
    failing = start_standin(mode="fail")
    standins.append(failing)
    gateway = gateway_over(standins, breaker_failures=2)
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            statuses = [http.post("/api/generate", json=generate()).status_code for _ in range(3)]
        assert statuses == [500, 500, 503]
        assert gateway.node_info(failing.url)["breaker"] == "open"
    finally:
        gateway.stop()


def test_a_node_that_never_answers_is_left_for_another_after_the_first_byte_timeout(
    standins: list[RunningStandIn],
) -> None:
    silent, working = start_standin(mode="hang"), start_standin()
    standins += [silent, working]
    gateway = gateway_over(standins, first_byte_timeout=0.5, breaker_failures=100)
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            ids = []
            for _ in range(4):  # both nodes take turns: the silent one is tried at least once
                response = http.post("/api/generate", json=generate())
                assert response.status_code == 200 and response.json()["response"] == "ok"
                ids.append(response.headers["x-request-id"])
        outcomes = [gateway.outcomes.find(request_id) for request_id in ids]
        assert {o.node for o in outcomes} == {working.url} and max(o.attempts for o in outcomes) == 2
        # The gateway gave up on the silent node by closing the connection, and counted it as a fault.
        wait_until(lambda: silent.standin.disconnects == silent.standin.model_hits(), message="hung up")
        info = gateway.node_info(silent.url)
        assert info["consecutive_failures"] >= 1
        assert "no answer from the node within 0.5s" in info["last_error"]
    finally:
        gateway.stop()


def test_a_lone_silent_node_is_a_504(standins: list[RunningStandIn]) -> None:
    silent = start_standin(mode="hang")
    standins.append(silent)
    gateway = gateway_over(standins, first_byte_timeout=0.5)
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            response = http.post("/v1/chat/completions", json={"model": STANDIN, "messages": []})
        assert response.status_code == 504
        error = response.json()["error"]
        assert error["type"] == "server_error" and "no answer from the node within 0.5s" in error["message"]
    finally:
        gateway.stop()


def test_a_stream_that_stalls_ends_with_an_ndjson_error_line(standins: list[RunningStandIn]) -> None:
    stalling = start_standin(mode="stall", lines=5)
    standins.append(stalling)
    gateway = gateway_over(standins, stream_idle_timeout=0.5)
    try:
        with (
            gateway.client(timeout=CLIENT_TIMEOUT) as http,
            http.stream("POST", "/api/generate", json=generate(stream=True)) as response,
        ):
            assert response.status_code == 200
            lines = [json.loads(line) for line in response.iter_lines() if line]
        assert [line.get("response") for line in lines[:2]] == ["w0 ", "w1 "]
        assert len(lines) == 3 and set(lines[2]) == {"error"}
        assert "sent nothing for 0.5s" in lines[2]["error"] and "the answer is cut" in lines[2]["error"]
        wait_until(lambda: stalling.standin.disconnects == 1, message="the node learns the client left")
        assert gateway.node_info(stalling.url)["consecutive_failures"] == 1  # a node fault

        # The official client sees the error line as an error.
        client = ollama.Client(host=gateway.url, timeout=CLIENT_TIMEOUT)
        with pytest.raises(ollama.ResponseError, match=r"sent nothing for 0\.5s"):
            for _ in client.generate(STANDIN, "Hi", stream=True):
                pass
    finally:
        gateway.stop()


def test_an_openai_stream_that_stalls_ends_with_an_error_event(standins: list[RunningStandIn]) -> None:
    stalling = start_standin(mode="stall", lines=5)
    standins.append(stalling)
    gateway = gateway_over(standins, stream_idle_timeout=0.5)
    body = {"model": STANDIN, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    try:
        with (
            gateway.client(timeout=CLIENT_TIMEOUT) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["type"] == "server_error" and "sent nothing for 0.5s" in error["message"]

        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", timeout=CLIENT_TIMEOUT)
        stream = client.chat.completions.create(
            model=STANDIN, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match=r"sent nothing for 0\.5s"):
            for _ in stream:
                pass
    finally:
        gateway.stop()


def test_a_node_that_refuses_the_gateways_key_is_marked_unauthorized_not_failed(
    standins: list[RunningStandIn],
) -> None:
    refusing, working = start_standin(mode="unauthorized"), start_standin()
    standins += [refusing, working]
    gateway = gateway_over(standins)  # both pass their first health check: the key changed since
    try:
        with gateway.client(timeout=CLIENT_TIMEOUT) as http:
            for _ in range(6):
                response = http.post("/api/generate", json=generate())
                assert response.status_code == 200 and response.json()["response"] == "ok"
            nodes = {n["url"]: n for n in http.get("/api/avocado/nodes").json()["nodes"]}
        assert refusing.standin.model_hits() == 1  # and nothing more once it refused
        info = nodes[refusing.url]
        assert (info["health"], info["healthy"], info["breaker"]) == ("unauthorized", False, "closed")
        assert "refuses the gateway's key" in info["last_error"]
    finally:
        gateway.stop()


def test_a_client_that_times_out_itself_is_not_held_by_the_gateway(standins: list[RunningStandIn]) -> None:
    """The timeouts are the gateway's: a client that gives up first still frees the node at once."""
    silent = start_standin(mode="hang")
    standins.append(silent)
    gateway = gateway_over(standins, first_byte_timeout=60)
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gateway.url}/api/generate", json=generate(), timeout=0.5)
        wait_until(lambda: silent.standin.disconnects == 1, message="the node learns the client left")
    finally:
        gateway.stop()
