"""The gateway's metrics count outcomes with few label values and render for Prometheus; ``GET /metrics``,
as ``avocado gateway`` wires it, serves them (behind a token when keys are required)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from avocado.gateway.hooks import Outcome
from avocado.gateway.metrics import DURATION_BUCKETS, GatewayMetrics
from tests.gateway.support import start_built, start_standin


def outcome(**changes: Any) -> Outcome:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "model": "smollm2:135m",
        "node": "node-a",
        "status": 200,
        "streamed": True,
        "latency_s": 1.5,
        "ttft_s": 0.2,
        "tokens_in": 12,
        "tokens_out": 30,
    }
    fields.update(changes)
    return Outcome(**fields)


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_request_is_counted_timed_and_its_tokens_added() -> None:
    metrics = GatewayMetrics()
    metrics.observe(outcome(), "alice")
    metrics.observe(outcome(tokens_in=8, tokens_out=2, latency_s=0.004, ttft_s=0.003), "alice")
    routed = {"model": "smollm2:135m", "node": "node-a"}
    assert value(metrics, "avocado_gateway_requests_total", **routed, key="alice", status="200") == 2
    assert value(metrics, "avocado_gateway_request_duration_seconds_count", **routed) == 2
    assert value(metrics, "avocado_gateway_request_duration_seconds_sum", **routed) == pytest.approx(1.504)
    assert value(metrics, "avocado_gateway_request_duration_seconds_bucket", **routed, le="0.005") == 1
    assert value(metrics, "avocado_gateway_time_to_first_token_seconds_count", **routed) == 2
    assert value(metrics, "avocado_gateway_tokens_total", **routed, key="alice", direction="in") == 20
    assert value(metrics, "avocado_gateway_tokens_total", **routed, key="alice", direction="out") == 32
    assert value(metrics, "avocado_gateway_failovers_total") == 0
    assert value(metrics, "avocado_gateway_errors_total", **routed, kind="upstream") is None


def test_failures_and_failovers() -> None:
    metrics = GatewayMetrics()
    metrics.observe(outcome(status=502, error="upstream", attempts=3, ttft_s=None, tokens_out=0), "master")
    metrics.observe(outcome(model="smollm2:135m", node=None, status=503, error="no_node"), None)
    assert value(metrics, "avocado_gateway_failovers_total") == 2
    labels = {"model": "smollm2:135m", "node": "node-a"}
    assert value(metrics, "avocado_gateway_errors_total", **labels, kind="upstream") == 1
    assert value(metrics, "avocado_gateway_requests_total", **labels, key="master", status="502") == 1
    assert value(metrics, "avocado_gateway_time_to_first_token_seconds_count", **labels) is None
    assert value(metrics, "avocado_gateway_tokens_total", **labels, key="master", direction="out") is None
    # No node took it: the model may be anything a client typed, so it is not a label value.
    unrouted = {"model": "unknown", "node": "none"}
    assert value(metrics, "avocado_gateway_errors_total", **unrouted, kind="no_node") == 1
    assert value(metrics, "avocado_gateway_requests_total", **unrouted, key="anonymous", status="503") == 1


def test_model_label_values_are_bounded() -> None:
    metrics = GatewayMetrics(max_models=2)
    for n in range(50):
        metrics.observe(outcome(model=f"typo-{n}", node=None, status=404, error="no_node"), None)
    for model in ("a", "b", "c", "d", "a", None):
        metrics.observe(outcome(model=model), "k")
    body, _ = metrics.render()
    models = {
        line.split('model="')[1].split('"')[0]
        for line in body.decode().splitlines()
        if line.startswith("avocado_gateway_requests_total{")
    }
    assert models == {"a", "b", "other", "unknown"}
    for model in ("a", "other"):
        labels = {"model": model, "node": "node-a", "key": "k", "status": "200"}
        assert value(metrics, "avocado_gateway_requests_total", **labels) == 2


def test_node_gauges_follow_the_pool() -> None:
    metrics = GatewayMetrics()
    metrics.set_node("node-a", healthy=True, in_flight=3)
    metrics.set_node("node-b", healthy=False, in_flight=0)
    metrics.set_node("node-a", healthy=True, in_flight=1)
    assert value(metrics, "avocado_gateway_node_healthy", node="node-a") == 1
    assert value(metrics, "avocado_gateway_node_healthy", node="node-b") == 0
    assert value(metrics, "avocado_gateway_node_in_flight", node="node-a") == 1
    metrics.remove_node("node-b")
    metrics.remove_node("never-there")
    assert value(metrics, "avocado_gateway_node_healthy", node="node-b") is None
    assert value(metrics, "avocado_gateway_node_in_flight", node="node-b") is None
    assert b'avocado_gateway_node_in_flight{node="node-a"} 1.0' in metrics.render()[0]


def test_render_text_and_openmetrics() -> None:
    metrics = GatewayMetrics()
    metrics.observe(outcome(latency_s=500.0), "alice")
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert "# TYPE avocado_gateway_requests_total counter" in text
    assert "# TYPE avocado_gateway_request_duration_seconds histogram" in text
    assert 'le="0.001"' in text and 'le="120.0"' in text
    assert (
        'avocado_gateway_request_duration_seconds_bucket{le="120.0",model="smollm2:135m",node="node-a"} 0.0'
        in text
    )
    assert DURATION_BUCKETS[0] == 0.001 and DURATION_BUCKETS[-1] == 120.0
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_registries_are_separate() -> None:
    one, other = GatewayMetrics(), GatewayMetrics()
    one.observe(outcome(), "alice")
    labels = {"model": "smollm2:135m", "node": "node-a", "key": "alice", "status": "200"}
    assert value(one, "avocado_gateway_requests_total", **labels) == 1
    assert value(other, "avocado_gateway_requests_total", **labels) is None


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_the_wired_route_counts_requests_and_shows_the_pool(tmp_path: Path) -> None:
    """``GET /metrics`` as ``avocado gateway`` serves it: requests through the proxy, node gauges."""
    standin = start_standin()
    gateway = start_built(home=tmp_path, nodes=[standin.url])
    try:
        with gateway.client() as http:
            body = {"model": "standin:1", "prompt": "Hi", "stream": False}
            assert http.post("/api/generate", json=body).status_code == 200
            assert http.post("/api/generate", json={**body, "model": "typo"}).status_code == 404
            response = http.get("/metrics")
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
            text = response.text
            routed = {"model": "standin:1", "node": standin.url, "key": "anonymous", "status": "200"}
            assert _sample(text, "avocado_gateway_requests_total", **routed) == 1
            assert _sample(text, "avocado_gateway_tokens_total", direction="out", node=standin.url) == 3
            assert _sample(text, "avocado_gateway_errors_total", model="unknown", kind="no_node") == 1
            assert _sample(text, "avocado_gateway_node_healthy", node=standin.url) == 1
            assert _sample(text, "avocado_gateway_node_in_flight", node=standin.url) == 0
            openmetrics = http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
            assert openmetrics.text.endswith("# EOF\n")
            assert http.post("/metrics").status_code == 405
    finally:
        gateway.stop()
        standin.stop()


MASTER = "master-0123456789abcdef-metrics"
TOKEN = "scraper-token-0123456789"


def test_metrics_need_a_token_when_keys_are_required(tmp_path: Path) -> None:
    guarded = start_built(home=tmp_path / "guarded", master_key=MASTER, metrics_token=TOKEN)
    try:
        for token, status in ((None, 401), ("avk-wrong", 403), (TOKEN, 200), (MASTER, 200)):
            with guarded.client(token) as http:
                response = http.get("/metrics")
            assert response.status_code == status, (token, response.text)
            if status != 200:
                assert "metrics" in response.json()["error"] and "avocado_gateway" not in response.text
        with guarded.client(TOKEN) as http:  # the scraper's token opens nothing else
            response = http.post("/api/generate", json={"model": "m", "prompt": "Hi"})
            assert response.status_code == 401
    finally:
        guarded.stop()
    no_token = start_built(home=tmp_path / "bare", master_key=MASTER)
    try:
        with no_token.client(TOKEN) as http:
            assert http.get("/metrics").status_code == 403
        with no_token.client(MASTER) as http:
            assert http.get("/metrics").status_code == 200
    finally:
        no_token.stop()
    disabled = start_built(home=tmp_path / "required", require_key=True)
    try:
        with disabled.client() as http:
            refused = http.get("/metrics")
        assert refused.status_code == 403 and "metrics_token" in refused.json()["error"]
    finally:
        disabled.stop()
