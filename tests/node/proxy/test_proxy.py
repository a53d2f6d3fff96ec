"""The node in front of an Ollama daemon: a real node as the upstream, a stand-in ``ollama`` binary."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from avocado.config import Settings
from avocado.discovery import DiscoveryWatcher, Registry
from avocado.node.proxy import OllamaNotFound, OllamaStartError, OllamaSupervisor, create_proxy_app
from tests.discovery.support import require_broker
from tests.support import (
    GREEDY,
    SMOLLM,
    RunningNode,
    RunningServer,
    free_port,
    serve,
    start_node,
    wait_for_serve,
)

OPTIONS = {**GREEDY, "num_predict": 8}
AVOCADO = [sys.executable, "-m", "avocado"]
KEY = "s3cret-key-for-proxy-tests"
COUNTING = "1, 2, 3, 4, 5, 6,"  # raw and greedy, SmolLM2 counts on without ever stopping

# ``ollama serve`` as far as the supervisor can tell: answers GET / and /api/version on OLLAMA_HOST,
# writes its pid and environment next to itself, and logs one line to stdout and one to stderr.
STANDIN = """#!{python}
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

here = Path(__file__).resolve().parent
if sys.argv[1:] != ["serve"]:
    sys.exit("stand-in only serves")
if os.environ.get("STANDIN_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
host, _, port = os.environ["OLLAMA_HOST"].rpartition(":")
keys = ("OLLAMA_HOST", "OLLAMA_ORIGINS", "STANDIN_MARK")
(here / "env.json").write_text(json.dumps({{k: os.environ.get(k) for k in keys}}))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            body, kind = b"Ollama is running", "text/plain; charset=utf-8"
        elif self.path == "/api/version":
            body, kind = b'{{"version":"0.0.0-standin"}}', "application/json; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer((host, int(port)), Handler)
(here / "pid.tmp").write_text(str(os.getpid()))
os.replace(here / "pid.tmp", here / "pid")
print("stand-in listening on", os.environ["OLLAMA_HOST"], flush=True)
print("stand-in stderr line", file=sys.stderr, flush=True)
server.serve_forever()
"""


def start_proxy(home: Path, upstream: str | None, **overrides: Any) -> RunningServer:
    """Start the proxy app with uvicorn in a background thread, as ``start_node`` starts a node."""
    settings = Settings(home=home, port=free_port(), engine="ollama", **overrides)
    app = create_proxy_app(settings, upstream)
    return serve(app, settings.port)


@pytest.fixture(scope="module")
def proxy(node: RunningNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_proxy(tmp_path_factory.mktemp("proxy-home"), node.url)
    yield running
    running.stop()


def test_ollama_client_gets_the_same_answers(node: RunningNode, proxy: RunningServer) -> None:
    direct, via = ollama.Client(host=node.url), ollama.Client(host=proxy.url)
    listed = {m.model: m.digest for m in via.list().models}
    assert listed == {m.model: m.digest for m in direct.list().models} and SMOLLM in listed
    assert via.show(SMOLLM).model_dump() == direct.show(SMOLLM).model_dump()

    prompt = "What is the capital of France?"
    assert via.generate(SMOLLM, prompt, options=OPTIONS).response == (
        direct.generate(SMOLLM, prompt, options=OPTIONS).response
    )
    streamed = list(via.generate(SMOLLM, prompt, options=OPTIONS, stream=True))
    assert len(streamed) > 2 and streamed[-1].done
    expected = "".join(c.response for c in direct.generate(SMOLLM, prompt, options=OPTIONS, stream=True))
    assert "".join(c.response for c in streamed) == expected

    messages = [{"role": "user", "content": "Say hello."}]
    chat = "".join(c.message.content or "" for c in via.chat(SMOLLM, messages, options=OPTIONS, stream=True))
    expected = "".join(
        c.message.content or "" for c in direct.chat(SMOLLM, messages, options=OPTIONS, stream=True)
    )
    assert chat == expected and chat
    embedded = via.embed(SMOLLM, ["one", "two"]).embeddings
    expected_vectors = direct.embed(SMOLLM, ["one", "two"]).embeddings
    assert len(embedded) == len(expected_vectors) == 2
    for vector, expected_vector in zip(embedded, expected_vectors, strict=True):
        assert vector == pytest.approx(expected_vector)

    with pytest.raises(ollama.ResponseError) as err:
        via.show("no-such-model:1b")
    assert err.value.status_code == 404 and "not found" in err.value.error


def test_openai_client_streams_through_v1(node: RunningNode, proxy: RunningServer) -> None:
    def stream(url: str) -> tuple[str, list[str | None]]:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model=SMOLLM,
                messages=[{"role": "user", "content": "Say hello."}],
                temperature=0,
                seed=42,
                max_tokens=8,
                stream=True,
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, [c.choices[0].finish_reason for c in chunks if c.choices]

    text, reasons = stream(proxy.url)
    assert (text, reasons) == stream(node.url) and text and reasons[-1] in ("stop", "length")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    assert SMOLLM in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope:1b")


def test_requests_pass_through_unchanged(node: RunningNode, proxy: RunningServer) -> None:
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/", {}),
        ("HEAD", "/", {}),
        ("GET", "/api/version", {}),
        ("GET", "/api/nowhere?x=1&y=%20z", {}),
        ("POST", "/api/generate", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("DELETE", "/api/delete", {"json": {"model": "ghost:1b"}}),
        ("GET", "/v1/models/ghost:1b", {}),
        ("GET", "/v2/library/ghost/manifests/1b", {}),
    ]
    with httpx.Client(base_url=node.url) as direct, httpx.Client(base_url=proxy.url) as via:
        for method, path, kwargs in requests:
            want, got = direct.request(method, path, **kwargs), via.request(method, path, **kwargs)
            assert (got.status_code, got.content) == (want.status_code, want.content), path
            assert got.headers.get("content-type") == want.headers.get("content-type"), path
        # A request body streamed through in chunks (no Content-Length): a blob upload.
        data = os.urandom(300_000)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        chunks = (data[i : i + 65536] for i in range(0, len(data), 65536))
        assert via.post(f"/api/blobs/{digest}", content=chunks).status_code == 201
        assert direct.head(f"/api/blobs/{digest}").status_code == 200


def test_browser_origins_follow_the_node_policy(proxy: RunningServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    local = httpx.options(f"{proxy.url}/api/chat", headers={"Origin": "http://localhost:3000", **preflight})
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    foreign = httpx.options(f"{proxy.url}/api/chat", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in foreign.headers
    simple = httpx.get(f"{proxy.url}/api/version", headers={"Origin": "https://evil.example"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_streams_are_not_buffered(proxy: RunningServer) -> None:
    body = {"model": SMOLLM, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 300}}
    with httpx.Client(base_url=proxy.url, timeout=120) as client:
        client.post("/api/generate", json={**body, "stream": False, "options": {"num_predict": 1}})
        started = time.monotonic()
        with client.stream("POST", "/api/generate", json=body) as response:
            lines = response.iter_lines()
            first = json.loads(next(lines))
            first_at = time.monotonic() - started
            rest = [json.loads(line) for line in lines if line]
        total = time.monotonic() - started
    assert not first["done"] and rest[-1]["done"]
    assert rest[-1]["eval_count"] == 300
    assert first_at < 0.3 * total, (first_at, total)


def test_client_disconnect_frees_the_upstream(node: RunningNode, proxy: RunningServer) -> None:
    # Counting runs the full 3000 tokens (about a minute on two cores) unless the proxy lets go of it.
    body = {"model": SMOLLM, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 3000}}
    with (
        httpx.Client(base_url=proxy.url, timeout=60) as client,
        client.stream("POST", "/api/generate", json=body) as response,
    ):
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    started = time.monotonic()
    short = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    assert httpx.post(f"{node.url}/api/generate", json=short, timeout=60).json()["done"]
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while node.service.manager.loaded[SMOLLM].in_use and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.service.manager.loaded[SMOLLM].in_use == 0


def test_unreachable_upstream_is_502(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    running = start_proxy(tmp_path, down)
    try:
        response = httpx.get(f"{running.url}/api/tags")
        assert response.status_code == 502
        assert response.json()["error"].startswith(f"ollama is not reachable at {down}: ")
        response = httpx.post(f"{running.url}/v1/chat/completions", json={"model": SMOLLM, "messages": []})
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["message"].startswith("ollama is not reachable") and error["type"] == "server_error"
        with pytest.raises(ollama.ResponseError) as err:
            ollama.Client(host=running.url).list()
        assert err.value.status_code == 502
    finally:
        running.stop()


def test_api_key_is_required_and_not_forwarded(home: Path, node: RunningNode, tmp_path: Path) -> None:
    keyed = start_proxy(tmp_path / "a", node.url, api_key=KEY)
    # Upstream with the very same key: it answers only if the client's header reached it.
    upstream = start_node(home, api_key=KEY)
    in_front = start_proxy(tmp_path / "b", upstream.url, api_key=KEY)
    try:
        assert httpx.get(keyed.url).text == "Ollama is running"
        for headers in ({}, {"Authorization": "Bearer wrong-key-123"}):
            response = httpx.get(f"{keyed.url}/api/tags", headers=headers)
            assert response.status_code == 401 and "API key" in response.json()["error"]
        assert httpx.get(f"{keyed.url}/v1/models").json()["error"]["code"] == "invalid_api_key"
        client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"})
        assert SMOLLM in {m.model for m in client.list().models}

        auth = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{upstream.url}/api/tags", headers=auth).status_code == 200
        refused = httpx.get(f"{in_front.url}/api/tags", headers=auth)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
    finally:
        for running in (keyed, in_front, upstream):
            running.stop()


# --- supervision, with a stand-in ``ollama`` executable ---


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding an executable ``ollama``, first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    script = directory / "ollama"
    script.write_text(STANDIN.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_MARK", "kept")
    return directory


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for its parent to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_supervisor_starts_restarts_and_stops_ollama(standin: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", engine="ollama")

    supervisor = OllamaSupervisor(settings)

    async def scenario() -> tuple[int, int]:
        await supervisor.start()
        try:
            env = json.loads((standin / "env.json").read_text())
            assert env == {
                "OLLAMA_HOST": f"127.0.0.1:{supervisor.port}",
                "OLLAMA_ORIGINS": "*",
                "STANDIN_MARK": "kept",
            }
            assert supervisor.url == f"http://127.0.0.1:{supervisor.port}"
            first = int((standin / "pid").read_text())
            assert supervisor.pid == first and supervisor.restarts == 0
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 15
            async with httpx.AsyncClient(base_url=supervisor.url, timeout=2) as client:
                while True:
                    assert time.monotonic() < deadline, "ollama was not restarted"
                    second = int((standin / "pid").read_text())
                    if second != first and supervisor.restarts == 1:
                        with contextlib.suppress(httpx.HTTPError):
                            if (await client.get("/")).text == "Ollama is running":
                                break
                    await asyncio.sleep(0.1)
                assert (await client.get("/api/version")).json() == {"version": "0.0.0-standin"}
            assert supervisor.pid == second
        finally:
            await supervisor.stop()
        return first, second

    first, second = asyncio.run(scenario())
    assert supervisor.pid is None
    assert gone(first) and gone(second)
    log = (settings.logs_dir / "ollama.log").read_text()
    assert log.count("stand-in listening on") == 2 and log.count("stand-in stderr line") == 2
    assert log.count(" serve on 127.0.0.1:") == 2


def test_requests_wait_while_a_dead_daemon_is_restarted(standin: Path, tmp_path: Path) -> None:
    running = start_proxy(tmp_path / "home", None)  # no upstream: the node runs the stand-in
    try:
        first = int((standin / "pid").read_text())
        os.kill(first, signal.SIGKILL)
        while not gone(first):
            time.sleep(0.01)
        response = httpx.get(f"{running.url}/api/version", timeout=30)  # sent while nothing listens
        assert response.status_code == 200, response.text
        assert response.json() == {"version": "0.0.0-standin"}
        assert int((standin / "pid").read_text()) != first
    finally:
        running.stop()


def test_supervisor_kills_a_daemon_that_ignores_sigterm(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_IGNORE_TERM", "1")
    supervisor = OllamaSupervisor(Settings(home=tmp_path, engine="ollama"), stop_timeout=0.5)

    async def scenario() -> int:
        await supervisor.start()
        pid = supervisor.pid
        assert pid is not None
        await supervisor.stop()
        return pid

    assert gone(asyncio.run(scenario()))


def test_supervisor_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        OllamaNotFound, match="--engine ollama needs --ollama-url or an ollama binary on PATH"
    ):
        create_proxy_app(Settings(home=tmp_path, engine="ollama"))
    failing = tmp_path / "ollama"
    failing.write_text(
        f"#!{sys.executable}\nimport sys\nprint('no GPU today', file=sys.stderr)\nsys.exit(3)\n"
    )
    failing.chmod(0o755)
    settings = Settings(home=tmp_path, engine="ollama")
    with pytest.raises(OllamaStartError, match="exited with status 3"):
        asyncio.run(OllamaSupervisor(settings).start())
    assert "no GPU today" in (settings.logs_dir / "ollama.log").read_text()


@pytest.mark.timeout(60)
def test_serve_engine_ollama_runs_and_stops_the_daemon(standin: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "AVOCADO_HOME": str(tmp_path / "home"), "AVOCADO_PORT": str(port)}
    env["AVOCADO_LOG_LEVEL"] = "debug"  # GET /api/version is routine traffic, logged at debug
    env.pop("AVOCADO_API_KEY", None)
    process = subprocess.Popen(
        [*AVOCADO, "serve", "--engine", "ollama"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_serve(process, port, 40)
        version = httpx.get(f"http://127.0.0.1:{port}/api/version").json()
        assert version == {"version": "0.0.0-standin"}
        pid = int((standin / "pid").read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "path=/api/version status=200" in err
    deadline = time.monotonic() + 5
    while not gone(pid):
        assert time.monotonic() < deadline, "the ollama stand-in outlived the node"
        time.sleep(0.05)
    assert "stand-in listening on" in (tmp_path / "home" / "logs" / "ollama.log").read_text()


def test_serve_engine_ollama_without_binary_fails_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "AVOCADO_HOME": str(tmp_path), "PATH": str(tmp_path)}
    result = subprocess.run(
        [*AVOCADO, "serve", "--engine", "ollama"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--engine ollama needs --ollama-url or an ollama binary on PATH" in result.stderr


def test_a_node_in_front_of_ollama_announces_the_daemons_models(node: RunningNode, tmp_path: Path) -> None:
    """Discovery works the same for the proxy engine: its models are the daemon's (here another node)."""
    broker = require_broker()
    running = start_proxy(tmp_path / "proxy-home", node.url, amqp_url=broker, announce_interval=60)
    stopped = False
    with httpx.Client(base_url=running.url, timeout=30) as http:
        status = http.get("/api/avocado/status").json()
        upstream_models = {m["name"] for m in http.get("/api/tags").json()["models"]}
    service_id = status["service_id"]
    assert status["engine"] == {"kind": "ollama", "upstream": node.url}

    async def scenario() -> None:
        nonlocal stopped
        registry = Registry()
        async with DiscoveryWatcher(broker, registry):
            await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=10)
            seen = registry.get(service_id)
            assert seen is not None and seen.url == running.url and seen.status == "online"
            assert SMOLLM in {m.name for m in seen.models}
            assert {m.name for m in seen.models} == upstream_models
            await asyncio.to_thread(running.stop)
            stopped = True
            await registry.wait_for(lambda r: r.get(service_id) is None, timeout=10)  # offline

    try:
        asyncio.run(scenario())
    finally:
        if not stopped:
            running.stop()


def test_one_request_id_on_the_answer(proxy: RunningServer) -> None:
    """The upstream (a node) answers with the id too; the client sees the proxy's, once."""
    answer = httpx.get(f"{proxy.url}/api/tags", headers={"X-Request-ID": "trace-7"}, timeout=30)
    assert answer.headers.get_list("x-request-id") == ["trace-7"]
    fresh = httpx.get(f"{proxy.url}/api/tags", timeout=30)
    assert len(fresh.headers.get_list("x-request-id")) == 1
