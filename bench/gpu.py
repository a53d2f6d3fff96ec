"""The node on a GPU against llama.cpp's own tools, built from the same sources for the same GPU.

    python bench/gpu.py --llama-cpp BIN_DIR [--model MODEL.gguf] [--reps 5] [--json OUT.json]

BIN_DIR holds ``llama-bench`` and ``llama-server`` from the kit bench/gpu_build.sh makes (CUDA,
llama-cpp-python 0.3.36's vendored llama.cpp, the same shared libraries llama_cpp loads). Without
--model it writes a 1.1B-parameter llama with random Q4_0 weights (tests/random_model.py), the size
of a small model people run, shaped like Llama 3.2 1B. Greedy, every layer on the GPU.

1. Single stream: the engine (the node's Runner, in this process, placed by the node's planner)
   against ``llama-bench -p 0 -n 128`` (tg128), alternated run by run; medians of --reps runs.
   Target: >= 0.95.
2. Aggregate tokens/s at 1, 4 and 16 clients, each streaming one ``/v1/completions`` of 128 tokens
   (a prompt of its own each): ``avocado serve --parallel 16`` against ``llama-server -np 16``, each
   slot 2048 tokens, rounds alternated (ABBA); medians of --reps rounds. Target: >= 1.0 at each level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ is a package

from tests.random_model import PRESETS, write_model

from avocado.config import Settings
from avocado.node.app import open_store
from avocado.node.engine.gpu import gpu_devices
from avocado.node.engine.jobs import Done, GenerateJob, Text
from avocado.node.engine.memory import layer_sizes
from avocado.node.engine.offload import Offload, plan_offload
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.store.building import CreateSpec, create_model
from avocado.node.store.gguf_info import read_gguf_info

NAME = "random:1b"
NUM_CTX = 2048  # per slot
SLOTS = 16
LEVELS = (1, 4, 16)
TOKENS = 128
THREADS = min(8, os.cpu_count() or 1)  # decoding on the GPU needs few; the same for every side
TOPICS = ["sailing", "bread", "volcanoes", "chess", "owls", "trains", "glaciers", "jazz", "bees", "maps"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not come up")


# -- single stream -----------------------------------------------------------------------------------


def llama_bench(binary: Path, model: Path) -> float:
    command = [str(binary), "-m", str(model), "-t", str(THREADS), "-ngl", "999", "-p", "0", "-n", str(TOKENS)]
    output = subprocess.run([*command, "-r", "1", "-o", "json"], capture_output=True, text=True, check=True)
    return float(json.loads(output.stdout)[0]["avg_ts"])


class Stamps:
    """Times the tokens of one job: the rate between the first and the last."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.finished = threading.Event()

    def __call__(self, event: object) -> None:
        if isinstance(event, Text):
            self.times.append(time.perf_counter())
        elif isinstance(event, Done | BaseException):
            self.finished.set()

    @property
    def rate(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def plan_for(model: Path, slots: int) -> Offload:
    """Where the node's planner puts the model's layers (the bench wants all of them on the GPU)."""
    sizes = layer_sizes(read_gguf_info(model), model.stat().st_size, NUM_CTX, slots, 512)
    plan = plan_offload(sizes, gpu_devices())
    if plan.layers != plan.layer_count:
        raise SystemExit(f"the model does not fit on the GPU whole: {plan}")
    return plan


def single_stream(model: Path, bench: Path, reps: int) -> dict[str, float]:
    runner = Runner(RunnerConfig(model, NUM_CTX, 512, THREADS, offload=plan_for(model, 1)))
    ours: list[float] = []
    theirs: list[float] = []

    def engine_run() -> None:
        stamps = Stamps()
        job = GenerateJob([runner.model.bos], SamplingParams(temperature=0), TOKENS, [], None, stamps)
        runner.submit(job)
        stamps.finished.wait()
        ours.append(stamps.rate)

    try:
        engine_run()  # warm-up: CUDA graphs, cuBLAS
        ours.clear()
        for rep in range(reps):  # ABBA: a drift does not always fall on the same side
            if rep % 2 == 0:
                theirs.append(llama_bench(bench, model))
            engine_run()
            if rep % 2 == 1:
                theirs.append(llama_bench(bench, model))
    finally:
        runner.close()
    engine, reference = statistics.median(ours), statistics.median(theirs)
    paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    tool = f"llama-bench tg{TOKENS} {reference:.1f} tok/s"
    print(f"single stream, median of {reps}: engine {engine:.1f} tok/s, {tool}")
    print(f"  ratio {engine / reference:.3f} (median of run pairs {paired:.3f}; target >= 0.95)")
    return {"engine": engine, "llama_bench": reference, "ratio": engine / reference, "paired": paired}


# -- aggregate -----------------------------------------------------------------------------------------


async def one_request(client: httpx.AsyncClient, url: str, prompt: str) -> int:
    body = {
        "model": NAME,
        "prompt": prompt,
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, finish = 0, None
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices") or []:
                finish = choice.get("finish_reason") or finish
    # The model never ends early (its end token never wins): a reply without usage ran to its length.
    return tokens or (TOKENS if finish == "length" else 0)


async def one_round(url: str, clients: int, round_no: int) -> float:
    prompts = [
        f"Story {round_no}.{i} about {TOPICS[(round_no + i) % len(TOPICS)]}: once upon a time"
        for i in range(clients)
    ]  # new to both servers every round: no reply comes from a prompt cache
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        counts = await asyncio.gather(*(one_request(client, url, p) for p in prompts))
        wall = time.perf_counter() - started
    return sum(counts) / wall


@contextmanager
def node(home: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "AVOCADO_HOME": str(home),
        "AVOCADO_PORT": str(port),
        "AVOCADO_NUM_THREAD": str(THREADS),
        "AVOCADO_NUM_CTX": str(NUM_CTX),
        "AVOCADO_PARALLEL": str(SLOTS),
        "AVOCADO_REGISTER_BUNDLED_MODELS": "false",
        "AVOCADO_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "avocado", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, "/api/version")
        yield url
    finally:
        process.terminate()
        process.wait(60)


@contextmanager
def llama_server(binary: Path, model: Path) -> Iterator[str]:
    port = free_port()
    command = [
        str(binary), "-m", str(model), "-t", str(THREADS), "-tb", str(THREADS), "-ngl", "999",
        "-np", str(SLOTS), "-c", str(NUM_CTX * SLOTS), "-a", NAME,
        "--host", "127.0.0.1", "--port", str(port), "--no-webui",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, "/health")
        yield url
    finally:
        process.terminate()
        process.wait(60)


def aggregate(model: Path, server: Path, reps: int) -> dict[str, dict[str, float]]:
    home = Path(tempfile.mkdtemp(prefix="avocado-gpu-bench-"))
    store = open_store(Settings(home=home, register_bundled_models=False))
    create_model(
        store, NAME, CreateSpec(files={"model.gguf": store.add_blob_file(model).digest}), lambda _: None
    )
    results: dict[str, dict[int, list[float]]] = {
        "avocado": {n: [] for n in LEVELS},
        "llama-server": {n: [] for n in LEVELS},
    }
    with node(home) as ours, llama_server(server, model) as theirs:
        servers = {"avocado": ours, "llama-server": theirs}
        for url in servers.values():
            asyncio.run(one_round(url, 1, -1))  # warm-up: load, CUDA graphs
        for round_no in range(reps):
            order = list(servers.items()) if round_no % 2 == 0 else list(reversed(servers.items()))
            for clients in LEVELS:
                for name, url in order:
                    results[name][clients].append(
                        asyncio.run(one_round(url, clients, round_no * 100 + clients))
                    )
    print(f"\naggregate tokens/s, {TOKENS} tokens per client, median of {reps} rounds (target >= 1.0)")
    print(f"{'clients':>7} {'avocado':>9} {'llama-server':>13} {'ratio':>6}")
    report = {}
    for clients in LEVELS:
        a = statistics.median(results["avocado"][clients])
        b = statistics.median(results["llama-server"][clients])
        print(f"{clients:>7} {a:>9.1f} {b:>13.1f} {a / b:>6.3f}")
        report[str(clients)] = {"avocado": a, "llama_server": b, "ratio": a / b}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--llama-cpp", type=Path, required=True, help="folder with llama-bench and llama-server"
    )
    parser.add_argument("--model", type=Path, help="a GGUF (default: write a random 1.1B llama, Q4_0)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    devices = gpu_devices()
    if not devices:
        raise SystemExit("no GPU: llama.cpp found none (a CUDA build and an NVIDIA GPU are needed)")
    model = args.model
    if model is None:
        model = write_model(Path(tempfile.mkdtemp()) / "random-1b-q4_0.gguf", PRESETS["1b"], "q4_0")
    gpu = f"{devices[0].description} ({devices[0].name}, {devices[0].total / 2**30:.0f} GiB)"
    print(f"GPU: {gpu}; model {model.name} ({model.stat().st_size / 2**20:.0f} MiB); {THREADS} threads")
    figures: dict[str, Any] = {"gpu": gpu, "model": model.name, "host": platform.node(), "threads": THREADS}
    figures["single_stream"] = single_stream(model, args.llama_cpp / "llama-bench", args.reps)
    figures["aggregate"] = aggregate(model, args.llama_cpp / "llama-server", args.reps)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
