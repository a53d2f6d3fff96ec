"""Streamed /api/chat over HTTP against the same generation in-process, and llama-cpp-python's own.

One run, several repetitions, medians and ratios. SmolLM2-135M, greedy, 128 tokens, 2 threads.

    .venv/bin/python bench/chat_stream.py [--reps 5] [--tokens 128]

Three paths, each given the same prompts (a different prompt per repetition, so every path
evaluates its prompt from scratch rather than from a warm KV cache):
- http:       a real ``avocado serve`` process; the client measures time to first token (TTFT)
              and the generation rate between the first and the last streamed chunk.
- engine:     the node's own Runner in this process, no HTTP, timed at each emitted token.
- reference:  llama-cpp-python's high-level ``Llama.create_chat_completion(stream=True)``, in a
              worker process of its own: two llama.cpp models in one process slow each other down
              (their OpenMP thread teams spin against each other), which would skew the comparison.
Targets: http tokens/s >= 95% of engine; http TTFT overhead <= 10 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from avocado.config import Settings
from avocado.node.app import open_store
from avocado.node.engine.jobs import Done, GenerateJob, Text
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.prompt import PromptBuilder

MODEL = "smollm2:135m"
ANIMALS = ["dragon", "otter", "falcon", "badger", "heron", "lynx", "walrus", "gecko", "bison", "crane"]
THREADS = 2
NUM_CTX = 4096


@dataclass
class Sample:
    ttft_ms: float
    tokens: int
    rate: float  # tokens/s after the first token


def prompt_for(rep: int) -> str:
    return f"Write a long, detailed story about a {ANIMALS[rep % len(ANIMALS)]} who learns to sail."


def start_node(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AVOCADO_HOME": str(home),
        "AVOCADO_PORT": str(port),
        "AVOCADO_NUM_THREAD": str(THREADS),
        "AVOCADO_NUM_CTX": str(NUM_CTX),
        "AVOCADO_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "avocado", "serve"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the node did not start")


def http_sample(client: httpx.Client, prompt: str, tokens: int) -> Sample:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "options": {"temperature": 0, "num_predict": tokens, "num_ctx": NUM_CTX},
    }
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    with client.stream("POST", "/api/chat", json=body) as response:
        for line in response.iter_lines():
            item = json.loads(line)
            if item.get("done"):
                count = item["eval_count"]
                break
            if item["message"]["content"]:
                last = time.perf_counter()
                first = first or last
    return Sample((first - started) * 1000, count, (count - 1) / (last - first))


def engine_sample(runner: Runner, prompt_tokens: list[int], tokens: int) -> Sample:
    stamps: list[float] = []
    finished = threading.Event()
    result: list[Done] = []

    def emit(event: object) -> None:
        if isinstance(event, Text):
            stamps.append(time.perf_counter())
        elif isinstance(event, Done):
            result.append(event)
            finished.set()
        else:
            finished.set()

    started = time.perf_counter()
    runner.submit(GenerateJob(prompt_tokens, SamplingParams(temperature=0), tokens, [], None, emit))
    finished.wait()
    count = result[0].eval_count
    return Sample((stamps[0] - started) * 1000, count, (count - 1) / (stamps[-1] - stamps[0]))


def reference_sample(llm: Any, prompt: str, tokens: int) -> Sample:
    started = time.perf_counter()
    stamps: list[float] = []
    stream = llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=tokens, stream=True
    )
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    count = len(stamps)  # one chunk per token in llama-cpp-python's stream
    return Sample((stamps[0] - started) * 1000, count, (count - 1) / (stamps[-1] - stamps[0]))


def reference_worker(model_path: str) -> None:
    """Serve reference samples: one JSON request per stdin line, one JSON sample per stdout line."""
    from llama_cpp import Llama

    llm = Llama(model_path, n_ctx=NUM_CTX, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
    for line in sys.stdin:
        request = json.loads(line)
        sample = reference_sample(llm, request["prompt"], request["tokens"])
        print(json.dumps(sample.__dict__), flush=True)


class ReferenceProcess:
    def __init__(self, model_path: Path) -> None:
        command = [sys.executable, __file__, "--reference-worker", str(model_path)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def sample(self, prompt: str, tokens: int) -> Sample:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"prompt": prompt, "tokens": tokens}) + "\n")
        self.process.stdin.flush()
        return Sample(**json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(30)


def median(samples: list[Sample], field: str) -> float:
    return float(statistics.median(float(getattr(s, field)) for s in samples))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument(
        "--home", type=Path, default=None, help="AVOCADO_HOME to use (default: a temporary one)"
    )
    parser.add_argument("--reference-worker", metavar="GGUF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        reference_worker(args.reference_worker)
        return

    home = args.home or Path(tempfile.mkdtemp(prefix="avocado-bench-"))
    store = open_store(Settings(home=home))
    model = store.resolve(MODEL)
    port = 18000 + os.getpid() % 1000

    runner = Runner(RunnerConfig(model.model_path, NUM_CTX, 512, THREADS))
    builder = PromptBuilder(model)
    reference = ReferenceProcess(model.model_path)
    node = start_node(home, port)
    results: dict[str, list[Sample]] = {"http": [], "engine": [], "reference": []}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            http_sample(client, "warm up", 4)  # load the model in the node
            reference.sample("warm up", 4)
            for rep in range(args.reps):
                prompt = prompt_for(rep)
                text = builder.chat([{"role": "user", "content": prompt}])
                results["http"].append(http_sample(client, prompt, args.tokens))
                results["engine"].append(engine_sample(runner, runner.model.tokenize(text), args.tokens))
                results["reference"].append(reference.sample(prompt, args.tokens))
    finally:
        node.terminate()
        node.wait(30)
        reference.close()
        runner.close()

    print(f"{MODEL}, greedy, {args.tokens} tokens, {THREADS} threads, {args.reps} repetitions (medians)")
    print(f"{'path':<10} {'tokens':>7} {'tok/s':>8} {'TTFT ms':>8}")
    for name, samples in results.items():
        tokens, rate, ttft = (median(samples, f) for f in ("tokens", "rate", "ttft_ms"))
        print(f"{name:<10} {tokens:>7.0f} {rate:>8.1f} {ttft:>8.1f}")
    http_rate, engine_rate = median(results["http"], "rate"), median(results["engine"], "rate")
    overhead = median(results["http"], "ttft_ms") - median(results["engine"], "ttft_ms")
    print(f"http / engine tokens/s:      {http_rate / engine_rate:.3f}  (target >= 0.95)")
    print(f"http TTFT overhead:          {overhead:+.1f} ms  (target <= 10 ms)")
    print(f"engine / reference tokens/s: {engine_rate / median(results['reference'], 'rate'):.3f}")


if __name__ == "__main__":
    main()
