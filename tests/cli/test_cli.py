"""The ``avocado`` command, run as a user runs it: a real process against a real node."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import GEMMA, SMOLLM, RunningNode, free_port, start_node, wait_for_serve

AVOCADO = [sys.executable, "-m", "avocado"]


def avocado(node: RunningNode, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AVOCADO_HOST": node.url}
    env.pop("AVOCADO_API_KEY", None)
    return subprocess.run(
        [*AVOCADO, *args], env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )


def test_list_and_show(node: RunningNode) -> None:
    listing = avocado(node, "list")
    assert listing.returncode == 0, listing.stderr
    assert SMOLLM in listing.stdout and GEMMA in listing.stdout and "MB" in listing.stdout
    shown = avocado(node, "show", SMOLLM)
    assert shown.returncode == 0 and "llama" in shown.stdout and "Q4_1" in shown.stdout
    template = avocado(node, "show", SMOLLM, "--template")
    assert "<|im_start|>" in template.stdout


@pytest.fixture(scope="module")
def brief(node: RunningNode) -> Iterator[str]:
    """SmolLM2 with an answer length: sampled at Ollama's defaults it sometimes never ends."""
    name = "cli-brief:1"
    body = {"model": name, "from": SMOLLM, "parameters": {"num_predict": 48}, "stream": False}
    assert httpx.post(f"{node.url}/api/create", json=body, timeout=60).status_code == 200
    yield name
    httpx.request("DELETE", f"{node.url}/api/delete", json={"model": name}, timeout=60)


def test_run_with_prompt_streams_an_answer(node: RunningNode, brief: str) -> None:
    result = avocado(node, "run", brief, "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_run_interactive_reads_stdin(node: RunningNode, brief: str) -> None:
    result = avocado(node, "run", brief, stdin="Say hi.\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_cp_rm_create_stop_ps(node: RunningNode, tmp_path: Path) -> None:
    assert avocado(node, "cp", SMOLLM, "cli-copy:1").returncode == 0
    assert "cli-copy:1" in avocado(node, "list").stdout
    assert avocado(node, "rm", "cli-copy:1").returncode == 0
    assert "cli-copy:1" not in avocado(node, "list").stdout

    weights = node.service.store.resolve(SMOLLM).model_path
    (tmp_path / "weights.gguf").symlink_to(weights)
    (tmp_path / "Modelfile").write_text(
        'FROM ./weights.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 4\nSYSTEM """Be brief."""\n'
    )
    created = avocado(node, "create", "cli-made:1", "-f", str(tmp_path / "Modelfile"))
    assert created.returncode == 0, created.stderr
    assert "success" in created.stderr
    assert "Be brief." in avocado(node, "show", "cli-made:1", "--system").stdout
    assert avocado(node, "run", "cli-made:1", "Hello").returncode == 0
    assert "cli-made:1" in avocado(node, "ps").stdout
    assert avocado(node, "stop", "cli-made:1").returncode == 0
    assert "cli-made:1" not in avocado(node, "ps").stdout
    assert avocado(node, "rm", "cli-made:1").returncode == 0


def test_errors_are_one_line_and_nonzero(node: RunningNode, tmp_path: Path) -> None:
    result = avocado(node, "show", "ghost:1b")
    assert result.returncode == 1 and "not found" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "Modelfile").write_text("FROM ./missing.gguf\n")
    result = avocado(node, "create", "x:1", "-f", str(tmp_path / "Modelfile"))
    assert result.returncode == 1 and "no such file" in result.stderr


def test_client_without_a_node(tmp_path: Path) -> None:
    env = {**os.environ, "AVOCADO_HOST": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [*AVOCADO, "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and "could not connect" in result.stderr


@pytest.mark.timeout(120)
def test_serve_starts_and_stops_on_sigterm(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "AVOCADO_HOME": str(home), "AVOCADO_PORT": str(port)}
    env.pop("AVOCADO_API_KEY", None)
    process = subprocess.Popen(
        [*AVOCADO, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_serve(process, port, 60)
        body = {"model": SMOLLM, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
        assert httpx.post(f"http://127.0.0.1:{port}/api/generate", json=body, timeout=60).json()["done"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why it ended.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "path=/api/generate model=smollm2:135m status=200" in err
    assert "path=/api/generate model=smollm2:135m status=200" in (home / "logs" / "avocado.log").read_text()


def test_run_interactive_on_a_terminal(node: RunningNode) -> None:
    """With a terminal on stdin, `run` is a chat session: /set, prompt, answer, /clear, /bye."""
    main, replica = pty.openpty()
    env = {**os.environ, "AVOCADO_HOST": node.url, "TERM": "dumb"}
    env.pop("AVOCADO_API_KEY", None)
    terminal = {"stdin": replica, "stdout": replica, "stderr": replica}
    process = subprocess.Popen([*AVOCADO, "run", SMOLLM], env=env, **terminal)
    os.close(replica)
    pending = b""

    def read_until(marker: bytes, timeout: float = 60) -> str:
        """Wait for ``marker``; return what came before it, and keep only what came after."""
        nonlocal pending
        deadline = time.monotonic() + timeout
        while marker not in pending:
            assert time.monotonic() < deadline, pending.decode(errors="replace")
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                pending += os.read(main, 4096)
        before, _, pending = pending.partition(marker)
        return before.decode(errors="replace")

    def command(line: bytes, answer: bytes) -> None:
        os.write(main, line + b"\n")
        read_until(answer)
        read_until(b">>> ")

    try:
        read_until(b">>> ")
        # Sampled at Ollama's defaults, this small model sometimes rambles on without an end.
        command(b"/set parameter temperature 0", b"Set parameter 'temperature' to '0'")
        command(b"/set parameter num_predict many", b"must be an integer")
        command(b"/set parameter num_predict 64", b"Set parameter 'num_predict' to '64'")
        os.write(main, b"What is the capital of France?\n")
        read_until(b"What is the capital of France?")  # the terminal's echo
        assert "Paris" in read_until(b">>> ")
        command(b"/set system Answer in French.", b"Set system message.")
        command(b"/clear", b"Cleared")
        os.write(main, b"/bye\n")
        assert process.wait(30) == 0
    finally:
        process.kill()
        os.close(main)


def test_pull_and_push_between_two_nodes(node: RunningNode, tmp_path: Path) -> None:
    target = start_node(tmp_path / "home", register_bundled_models=False)
    try:
        source = node.url.removeprefix("http://")
        pulled = avocado(target, "pull", "--insecure", f"{source}/library/smollm2:135m")
        assert pulled.returncode == 0, pulled.stderr
        assert "pulling manifest" in pulled.stderr and "success" in pulled.stderr
        assert f"{source}/library/smollm2:135m" in avocado(target, "list").stdout
        copy = f"{source}/library/smollm2:cli-push"
        assert avocado(target, "cp", f"{source}/library/smollm2:135m", copy).returncode == 0
        pushed = avocado(target, "push", "--insecure", copy)
        assert pushed.returncode == 0 and "success" in pushed.stderr, pushed.stderr
        assert "smollm2:cli-push" in avocado(node, "list").stdout
        assert avocado(node, "rm", "smollm2:cli-push").returncode == 0
        missing = avocado(target, "pull", "--insecure", f"{source}/library/ghost:1b")
        assert missing.returncode == 1 and "does not exist" in missing.stderr
    finally:
        target.stop()
