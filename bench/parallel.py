"""The engine against llama.cpp's own limit, and the node under concurrency against llama-server.

    .venv/bin/python bench/parallel.py --llama-cpp BUILD_DIR [--reps 3]

BUILD_DIR holds ``bin/llama-bench`` and ``bin/llama-server`` built from the llama.cpp sources
that the llama-cpp-python sdist vendors (a scratch build, never committed):

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   # then untar it
    cd llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B build -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF
    cmake --build build -j2 --target llama-bench llama-server

Without it the script says so and measures ours only. SmolLM2-135M, 2 threads, greedy.
1. Single stream: our engine in-process against ``llama-bench``, alternated run by run, median of
   15 runs each (a run takes seconds; the machine drifts by 10-20% within a minute). Like for like:
   tg128 generates 128 tokens from an empty context, so the engine does too (a one-word prompt);
   target >= 95%. Then both after the same chat prompt (about 40 tokens): the engine against
   ``llama-bench -d N`` (tg128 at depth N). Attention over those tokens costs a few percent of
   each step, in llama.cpp's own tool as in the engine.
2. Concurrency 1, 2, 4, 8: each client streams one chat completion of up to 96 tokens (a distinct
   prompt each) from ``avocado serve --parallel 4`` and from ``llama-server -np 4``, through the same
   OpenAI-style streaming client. Aggregate generated tokens/s (all completion tokens / wall time) and
   median time to first token. Target: aggregate >= 100% of llama-server at every concurrency.
   Both on their defaults: the node's tokens reach its event loop at most every 20 ms while they
   come faster (``--stream-interval``), one chunk each; llama-server sends each token as it comes.
3. Shared system prompt: 4 clients at once, each a different question after the same system prompt
   of about 450 tokens (an app's instructions), both servers as in 2. No target: it shows what
   taking another slot's KV memory for a common prompt start saves.
4. Conversations over slots: twice as many conversations as slots, three turns each, all sent at
   once turn after turn (each with a system prompt of its own), so every follow-up finds its slot
   taken by another conversation. Aggregate tokens/s and the median time to first token of the
   follow-up turns, for both servers (llama-server keeps prompts in RAM, ``--cache-ram``) and for a
   node without its prompt cache (``--prompt-cache 0``). No target: it shows what the cache saves.
5. Two models loaded: the node's generation tokens/s for SmolLM2 alone and with Gemma 3 loaded
   beside it (idle), alternated. No target: a loaded model must not slow the others down (before the
   node ran every model on one compute thread, a second one cost the first a third of its speed).
6. Stream interval: 1 client, the node against a node with ``--stream-interval 0`` (every token
   handed to the event loop as it comes), alternated. No target: it shows what the interval saves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from avocado.config import Settings
from avocado.node.app import open_store
from avocado.node.engine.jobs import Done, GenerateJob, Text
from avocado.node.engine.runner import Runner, RunnerConfig
from avocado.node.engine.sampling import SamplingParams
from avocado.node.prompt import PromptBuilder

MODEL = "smollm2:135m"
SECOND_MODEL = "gemma3:270m"
THREADS = 2
NUM_CTX = 4096
PARALLEL = 4
LEVELS = (1, 2, 4, 8)
TOKENS = 96
SINGLE_REPS = 15
TOPICS = ["sailing", "bread", "volcanoes", "chess", "owls", "trains", "glaciers", "jazz", "bees", "maps"]


@dataclass
class Round:
    aggregate: float  # completion tokens per second, all clients together
    ttft_ms: float  # median over requests


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], path: str = "/") -> None:
    deadline = time.monotonic() + 180
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


def llama_bench(binary: Path, model: Path, depth: int = 0) -> float:
    """tg128: tokens/s generating 128 tokens after ``depth`` tokens of context."""
    command = [str(binary), "-m", str(model), "-t", str(THREADS), "-p", "0", "-n", "128", "-d", str(depth)]
    output = subprocess.run(
        [*command, "-r", "1", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(output)[0]["avg_ts"])


class Stamps:
    """Times each emitted token of one job."""

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


def single_stream(
    model_path: Path, prompts: list[list[int]], bench: Path | None, reps: int, what: str
) -> None:
    """Our engine's tokens/s against llama-bench, alternated run by run (the machine is noisy).

    llama-bench runs at the depth of the prompts (their median length; 1 is an empty context).
    """
    runner = Runner(RunnerConfig(model_path, NUM_CTX, 512, THREADS))
    depth = int(statistics.median(len(p) for p in prompts))
    depth = 0 if depth <= 1 else depth
    ours: list[float] = []
    theirs: list[float] = []

    def engine_run(rep: int) -> None:
        stamps = Stamps()
        params = SamplingParams(temperature=0)
        runner.submit(GenerateJob(prompts[rep % len(prompts)], params, 128, [], None, stamps))
        stamps.finished.wait()
        ours.append(stamps.rate)

    try:
        for rep in range(reps):  # ABBA, as for the servers below
            if bench is not None and rep % 2 == 0:
                theirs.append(llama_bench(bench, model_path, depth))
            engine_run(rep)
            if bench is not None and rep % 2 == 1:
                theirs.append(llama_bench(bench, model_path, depth))
    finally:
        runner.close()
    rate = statistics.median(ours)
    if not theirs:
        print(f"single stream, {what}: engine {rate:.1f} tok/s")
        return
    reference = statistics.median(theirs)
    # Each run against the llama-bench run beside it: the machine's speed drifts by 10-20% within
    # a minute, and the two runs of a pair see the same drift.
    paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    tool = f"llama-bench tg128 at depth {depth}" if depth else "llama-bench tg128"
    print(f"single stream, {what}, median of {reps}: engine {rate:.1f} tok/s, {tool} {reference:.1f} tok/s")
    print(f"  ratio {rate / reference:.3f} (median of run pairs {paired:.3f})")


SYSTEM = "You answer questions for the staff of a regional library network. " + " ".join(
    f"Branch {n} opens at {7 + n % 3} and keeps its {TOPICS[n % len(TOPICS)]} collection on floor {n % 4}."
    for n in range(1, 25)
)


@dataclass
class Reply:
    ttft_ms: float
    tokens: int
    text: str


async def one_request(
    client: httpx.AsyncClient, url: str, messages: list[dict[str, str]], max_tokens: int = TOKENS
) -> Reply:
    body = {
        "model": MODEL,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft, tokens, parts = 0.0, 0, []
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices", []):
                if content := choice.get("delta", {}).get("content"):
                    parts.append(content)
                    if not ttft:
                        ttft = time.perf_counter() - started
    return Reply(ttft * 1000, tokens, "".join(parts))


async def one_round(url: str, clients: int, round_no: int, system: str | None = None) -> Round:
    # Every prompt of a bench run is new to both servers: llama-server keeps the KV memory of
    # earlier prompts in RAM (--cache-ram) and restores one that comes again whole, which would turn
    # a repeated prompt into a free prefill for it alone.
    prompts = [
        f"Write a detailed story about {TOPICS[(round_no * clients + i) % len(TOPICS)]}, "
        f"part {clients}.{round_no}.{i}."
        for i in range(clients)
    ]
    head = []
    if system is not None:  # a new system prompt each round, so no slot holds it when the round starts
        head = [{"role": "system", "content": f"Round {round_no}. {system}"}]
    async with httpx.AsyncClient(timeout=300) as client:
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(one_request(client, url, [*head, {"role": "user", "content": p}]) for p in prompts)
        )
        wall = time.perf_counter() - started
    return Round(sum(r.tokens for r in replies) / wall, statistics.median(r.ttft_ms for r in replies))


def start_node(home: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """``avocado serve`` on its defaults but for the bench's threads, context and slots, and ``settings``."""
    env = {
        **os.environ,
        "AVOCADO_HOME": str(home),
        "AVOCADO_PORT": str(port),
        "AVOCADO_NUM_THREAD": str(THREADS),
        "AVOCADO_NUM_CTX": str(NUM_CTX),
        "AVOCADO_PARALLEL": str(PARALLEL),
        "AVOCADO_LOG_LEVEL": "warning",
        **{f"AVOCADO_{name.upper()}": value for name, value in settings.items()},
    }
    return subprocess.Popen([sys.executable, "-m", "avocado", "serve"], env=env)


def start_llama_server(binary: Path, model: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        str(binary), "-m", str(model), "-t", str(THREADS), "-tb", str(THREADS), "-np", str(PARALLEL),
        "-c", str(NUM_CTX * PARALLEL), "--host", "127.0.0.1", "--port", str(port), "--no-webui",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shared_system_prompt(servers: dict[str, tuple[str, subprocess.Popen[bytes]]], reps: int) -> None:
    clients = PARALLEL
    print(f"\nshared system prompt, {clients} clients at once, median of {reps} rounds")
    print(f"{'server':<13} {'agg tok/s':>9} {'TTFT ms':>8}")
    results: dict[str, list[Round]] = {name: [] for name in servers}
    for round_no in range(reps):
        order = list(servers.items())
        for name, (url, _) in order if round_no % 2 == 0 else reversed(order):
            results[name].append(asyncio.run(one_round(url, clients, 100 + round_no, SYSTEM)))
    for name, rounds in results.items():
        aggregate = statistics.median(r.aggregate for r in rounds)
        print(f"{name:<13} {aggregate:>9.1f} {statistics.median(r.ttft_ms for r in rounds):>8.1f}")


CONVERSATIONS = 2 * PARALLEL  # more conversations than slots: each turn, half find theirs taken
FOLLOW_UPS = ["Tell me more about it.", "Sum that up in one sentence."]
ANSWER_TOKENS = 48


def briefing(conversation: int, rep: int) -> str:
    """A system prompt of about 200 tokens, different for every conversation of every run."""
    topic = TOPICS[conversation % len(TOPICS)]
    room = rep * 97 + conversation * 13  # numbers of its own: no two briefings share more than a start
    facts = " ".join(f"Fact {n}: {topic} item {n} is kept in room {room + n}." for n in range(12))
    return f"Session {rep}.{conversation}. You are a guide to {topic}. {facts}"


async def chats(url: str, rep: int) -> tuple[float, float]:
    """Every conversation at once, turn after turn: aggregate tokens/s, median TTFT of follow-up turns."""
    histories = [
        [
            {"role": "system", "content": briefing(c, rep)},
            {"role": "user", "content": f"Tell me about {TOPICS[c % len(TOPICS)]}."},
        ]
        for c in range(CONVERSATIONS)
    ]
    tokens, wall, follow_ups = 0, 0.0, []
    for turn in range(1 + len(FOLLOW_UPS)):
        # A client per turn: a connection idle since an early answer of the last turn may be closed
        # by the server (keep-alive timeout, 5 s for both) just as the next turn sends on it.
        async with httpx.AsyncClient(timeout=300) as client:
            started = time.perf_counter()
            replies = await asyncio.gather(*(one_request(client, url, h, ANSWER_TOKENS) for h in histories))
            wall += time.perf_counter() - started
        tokens += sum(r.tokens for r in replies)
        if turn:
            follow_ups += [r.ttft_ms for r in replies]
        if turn < len(FOLLOW_UPS):
            for history, reply in zip(histories, replies, strict=True):
                history.append({"role": "assistant", "content": reply.text})
                history.append({"role": "user", "content": FOLLOW_UPS[turn]})
    return tokens / wall, statistics.median(follow_ups)


@contextlib.contextmanager
def other_node(**settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A second node with a home of its own and other ``settings``: what a feature of the first gains."""
    home = Path(tempfile.mkdtemp(prefix="avocado-bench-"))
    open_store(Settings(home=home))  # registers the bundled models
    port = free_port()
    url, process = f"http://127.0.0.1:{port}", start_node(home, port, **settings)
    try:
        wait_until_up(url, process)
        asyncio.run(one_round(url, 1, -1))  # warm up: load the model
        yield url, process
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def conversations(servers: dict[str, tuple[str, subprocess.Popen[bytes]]], reps: int) -> None:
    turns = 1 + len(FOLLOW_UPS)
    print(f"\n{CONVERSATIONS} conversations on {PARALLEL} slots, {turns} turns each, median of {reps} runs")
    print(f"{'server':<22} {'agg tok/s':>9} {'follow-up TTFT ms':>17}")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for rep in range(reps):
        order = list(servers.items())
        for name, (url, _) in order if rep % 2 == 0 else reversed(order):
            results[name].append(asyncio.run(chats(url, rep)))
    summary = {
        name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }
    for name, (aggregate, ttft) in summary.items():
        print(f"{name:<22} {aggregate:>9.1f} {ttft:>17.1f}")
    if "llama-server" in summary:
        ours, theirs = summary["avocado"], summary["llama-server"]
        print(f"{'ratio':<22} {ours[0] / theirs[0]:>9.3f} {ours[1] / theirs[1]:>17.3f}")


def generation_rate(url: str, model: str, keep_alive: str | int = "5m") -> float:
    """Tokens/s of one non-streamed generation, as the node counts them (eval_count / eval_duration)."""
    body = {
        "model": model,
        "prompt": "Write a long story about owls.",
        "stream": False,
        "keep_alive": keep_alive,
        "options": {"temperature": 0, "num_predict": TOKENS},
    }
    answer = httpx.post(f"{url}/api/generate", json=body, timeout=300).json()
    return float(answer["eval_count"]) / float(answer["eval_duration"]) * 1e9


def two_models(url: str, reps: int) -> None:
    alone, beside = [], []
    for _ in range(reps):
        generation_rate(url, SECOND_MODEL, keep_alive=0)  # unloads it
        alone.append(generation_rate(url, MODEL))
        generation_rate(url, SECOND_MODEL)  # loads it; it stays, idle
        beside.append(generation_rate(url, MODEL))
    first, second = statistics.median(alone), statistics.median(beside)
    print(f"\ntwo models loaded, median of {reps}: {MODEL} alone {first:.1f} tok/s, ", end="")
    print(f"with {SECOND_MODEL} loaded {second:.1f} tok/s, ratio {second / first:.3f}")


def stream_interval(node: tuple[str, subprocess.Popen[bytes]], reps: int) -> None:
    """1 client, the node on its default stream interval against one handing over every token."""
    rounds = 3 * reps  # 1-client rounds take a second each: more of them to see a few percent
    with other_node(stream_interval="0") as each_token:
        pair = {"avocado": node, "--stream-interval 0": each_token}
        results: dict[str, list[Round]] = {name: [] for name in pair}
        for round_no in range(rounds):
            order = list(pair.items())
            for name, (url, _) in order if round_no % 2 == 0 else reversed(order):
                results[name].append(asyncio.run(one_round(url, 1, 200 + round_no)))
    print(f"\nstream interval, 1 client, median of {rounds} rounds")
    print(f"{'server':<20} {'agg tok/s':>9} {'TTFT ms':>8}")
    for name, runs in results.items():
        aggregate = statistics.median(r.aggregate for r in runs)
        print(f"{name:<20} {aggregate:>9.1f} {statistics.median(r.ttft_ms for r in runs):>8.1f}")
    ours, each = results["avocado"], results["--stream-interval 0"]
    paired = statistics.median(a.aggregate / b.aggregate for a, b in zip(ours, each, strict=True))
    print(f"{'ratio':<20} {paired:>9.3f}   (median of round pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llama-cpp", type=Path, help="llama.cpp build directory (with bin/llama-bench)")
    parser.add_argument("--reps", type=int, default=3, help="rounds per concurrency level (median)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="avocado-bench-"))
    model = open_store(Settings(home=home)).resolve(MODEL)
    bench_bin = args.llama_cpp / "bin" / "llama-bench" if args.llama_cpp else None
    server_bin = args.llama_cpp / "bin" / "llama-server" if args.llama_cpp else None
    have_llama = bool(bench_bin and bench_bin.is_file() and server_bin and server_bin.is_file())
    if not have_llama:
        print("llama.cpp binaries not given or not found: measuring avocado only (see --help to build them)")

    builder = PromptBuilder(model)
    tokenizer = Runner(RunnerConfig(model.model_path, 512, 512, THREADS))
    prompts = [
        tokenizer.model.tokenize(
            builder.chat([{"role": "user", "content": f"Write a long story about {t}."}])
        )
        for t in TOPICS[:5]
    ]
    # tg128 starts from an empty context: one-word prompts, each a single token.
    words = [tokenizer.model.tokenize(w, add_special=False) for w in ("Once", "The", "In", "A", "When")]
    tokenizer.close()

    print(f"{MODEL}, {THREADS} threads, greedy")
    bench = bench_bin if have_llama else None
    single_stream(model.model_path, words, bench, SINGLE_REPS, "from an empty context (target >= 0.95)")
    single_stream(model.model_path, prompts, bench, SINGLE_REPS, "after a chat prompt")

    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    node_port = free_port()
    servers["avocado"] = (f"http://127.0.0.1:{node_port}", start_node(home, node_port))
    if have_llama and server_bin:
        server_port = free_port()
        url = f"http://127.0.0.1:{server_port}"
        servers["llama-server"] = (url, start_llama_server(server_bin, model.model_path, server_port))
    try:
        for name, (url, process) in servers.items():
            wait_until_up(url, process, "/" if name == "avocado" else "/health")
            asyncio.run(one_round(url, 1, -1))  # warm up: load the model
        print(f"\nconcurrency, {TOKENS} tokens each, median of {args.reps} rounds")
        print(f"{'clients':>7} {'server':<13} {'agg tok/s':>9} {'TTFT ms':>8}")
        for clients in LEVELS:
            results: dict[str, list[Round]] = {name: [] for name in servers}
            for round_no in range(args.reps):
                # ABBA order: whichever server runs second in a pair does not always get the warmer
                # (or the noisier) half, so slow drifts on a shared machine cancel out.
                order = list(servers.items())
                for name, (url, _) in order if round_no % 2 == 0 else reversed(order):
                    results[name].append(asyncio.run(one_round(url, clients, round_no)))
            summary = {
                name: (
                    statistics.median(r.aggregate for r in rounds),
                    statistics.median(r.ttft_ms for r in rounds),
                )
                for name, rounds in results.items()
            }
            for name, (aggregate, ttft) in summary.items():
                print(f"{clients:>7} {name:<13} {aggregate:>9.1f} {ttft:>8.1f}")
            if "llama-server" in summary:
                ratio = summary["avocado"][0] / summary["llama-server"][0]
                paired = statistics.median(
                    a.aggregate / b.aggregate
                    for a, b in zip(results["avocado"], results["llama-server"], strict=True)
                )
                pairs = f"median of round pairs {paired:.3f}"
                print(f"{clients:>7} {'ratio':<13} {ratio:>9.3f}   (target >= 1.0; {pairs})")
        shared_system_prompt(servers, args.reps)
        with other_node(prompt_cache="0") as plain:
            conversations({**servers, "avocado, no cache": plain}, args.reps)
        two_models(servers["avocado"][0], args.reps)
        stream_interval(servers["avocado"], args.reps)
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
