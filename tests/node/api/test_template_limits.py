"""A template that comes with a request runs off the event loop, within limits a 400 names.

``{{ range 1000000000 }}`` once built a billion-item list on the event loop: one request took the
node's memory and stopped every other request meanwhile.
"""

from __future__ import annotations

import resource
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from avocado.node.service import TEMPLATE_LIMITS
from tests.node.api.support import assert_error, gate_renders
from tests.support import SMOLLM, RunningNode


def generate(template_source: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": SMOLLM,
        "prompt": "Hi",
        "template": template_source,
        "stream": False,
        "options": {"num_predict": 1, "temperature": 0},
        **extra,
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process runs the node


def test_a_billion_iterations_are_refused_without_taking_memory(http: httpx.Client) -> None:
    http.post("/api/generate", json={"model": SMOLLM})  # loaded first: its weights are not the template's
    before = peak_rss_mib()
    response = http.post("/api/generate", json=generate("{{ range 1000000000 }}x{{ end }}{{ .Prompt }}"))
    assert_error(response, 400, f"more than {TEMPLATE_LIMITS.iterations} range iterations")
    assert peak_rss_mib() - before < 100


@pytest.mark.parametrize(
    "source",
    [
        '{{ range 100 }}{{ printf "%10000000s" "x" }}{{ end }}',  # written out
        '{{ $x := "ab" }}{{ range 64 }}{{ $x = print $x $x }}{{ end }}',  # grown in a variable
    ],
)
def test_output_past_the_limit_is_refused(http: httpx.Client, source: str) -> None:
    response = http.post("/api/generate", json=generate(source))
    assert_error(response, 400, f"exceeded {TEMPLATE_LIMITS.output} characters")


def test_a_template_too_long_to_parse_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/generate", json=generate("{{ .Prompt }}" * 10_000))
    assert_error(response, 400, "at most 65536")


def test_a_broken_template_is_a_400(http: httpx.Client) -> None:
    assert_error(http.post("/api/generate", json=generate("{{ .Prompt ")), 400, "template error")
    assert_error(http.post("/api/generate", json=generate("{{ index .Prompt 99 }}")), 400, "template error")


def test_a_template_within_the_limits_still_works(http: httpx.Client) -> None:
    result = http.post("/api/generate", json=generate("{{ range 3 }}-{{ end }}{{ .Prompt }}")).json()
    assert result["done"] is True and result["prompt_eval_count"] > 1


def test_the_node_answers_others_while_a_request_template_renders(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "{{ range 2 }}{{ end }}{{ .Prompt }} "
    started, go = gate_renders(monkeypatch, lambda tmpl, data, limits: tmpl.source == source)
    with ThreadPoolExecutor(max_workers=1) as pool, node.client() as http:
        pending = pool.submit(http.post, "/api/generate", json=generate(source))
        assert started.wait(60), "the template was never rendered"
        try:
            assert http.get("/api/version", timeout=10).status_code == 200  # while it renders
        finally:
            go.set()
        assert pending.result().json()["done"] is True


def test_a_model_template_too_heavy_for_the_event_loop_renders_in_a_thread(
    node: RunningNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short chat of many turns starts on the event loop, goes past its small budget, and is
    rendered again in a worker thread: same answer, other requests served meanwhile."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(2_501)]
    body = {"model": SMOLLM, "messages": messages, "stream": False, "options": {"num_predict": 1}}
    started, go = gate_renders(monkeypatch, lambda tmpl, data, limits: limits is TEMPLATE_LIMITS)
    with ThreadPoolExecutor(max_workers=1) as pool, node.client() as http:
        pending = pool.submit(http.post, "/api/chat", json=body)
        assert started.wait(60), "the chat was not rendered again off the event loop"
        try:
            assert http.get("/api/version", timeout=10).status_code == 200
        finally:
            go.set()
        result = pending.result().json()
    assert result["done"] is True and result["prompt_eval_count"] > 1000
