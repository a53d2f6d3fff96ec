"""What the gateway adds: the same load on a node called directly and through ``avocado gateway``.

    .venv/bin/python bench/gateway.py [--seconds 8] [--clients 1,16,64]

The node is ``bench/canned_upstream.py``: canned Ollama/OpenAI answers at once, or streamed at a fixed
pace, so that what is measured is the proxy, not a model. One run, each path in turn:
1. Non-streaming ``POST /v1/chat/completions`` (as the LiteLLM figures in the issue were measured) and
   ``POST /api/chat``, driven by ``wrk`` (Debian package ``wrk``) at each client count: requests/s,
   latency p50/p99, errors. Added latency = gateway p50/p99 - direct p50/p99.
2. Streaming ``POST /api/chat`` with ``"stream": true`` (20 chunks, 10 ms apart) from an asyncio
   client at each client count: when each chunk arrives after the request was sent; added delay per
   chunk = median over chunks of (gateway arrival - direct arrival).
Targets: <= 1.5 ms p50 added at 1 client; at 16 and 64 clients >= 50% of direct requests/s; no
errors; streamed chunks forwarded as they arrive. Reference (issue): LiteLLM proxy +7.7 ms p50 at 1
client, ~100-125 requests/s at 16 and 64 clients where the upstream alone served ~750.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).parent
MODEL = "canned:latest"
CHUNKS, PACE_MS = 20, 10.0
BODIES = {
    "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    "/api/chat": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False},
}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], ready: str = "") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            response = httpx.get(url, timeout=1)
            if response.is_success and ready in response.text:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, path: str, clients: int, seconds: int, script_dir: Path) -> Load:
    script = script_dir / f"{path.strip('/').replace('/', '_')}.lua"
    body = json.dumps(BODIES[path]).replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = min(2, clients)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url + path,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    if errors:
        detail = [line.strip() for line in out.splitlines() if "rrors" in line or "Non-2xx" in line]
        print(f"  ({url}{path}, {clients} clients: {'; '.join(detail)})", file=sys.stderr)
    return Load(rps, _percentile(out, "50%"), _percentile(out, "99%"), errors)


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert match, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def stream_arrivals(url: str, clients: int, rounds: int) -> tuple[list[list[float]], int]:
    """Per stream, when each chunk arrived (seconds after sending); and how many streams failed."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    results: list[list[float]] = []
    failed = 0
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> None:
            nonlocal failed
            started = time.perf_counter()
            times = []
            try:
                async with client.stream("POST", f"{url}/api/chat", json=body) as response:
                    async for line in response.aiter_lines():
                        if line:
                            times.append(time.perf_counter() - started)
                if response.status_code != 200 or len(times) != CHUNKS + 1:
                    failed += 1
                else:
                    results.append(times)
            except httpx.HTTPError:
                failed += 1

        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(clients)))
    return results, failed


def chunk_delay_ms(direct: list[list[float]], gateway: list[list[float]]) -> float:
    """Median over chunk positions of the difference in median arrival time."""
    per_chunk = []
    for index in range(CHUNKS + 1):
        d = statistics.median(times[index] for times in direct)
        g = statistics.median(times[index] for times in gateway)
        per_chunk.append(g - d)
    return statistics.median(per_chunk) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement")
    parser.add_argument("--clients", default="1,16,64", help="concurrent clients, comma-separated")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark drives HTTP load with wrk: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="avocado-bench-gateway-"))
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    gateway = f"http://127.0.0.1:{gateway_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
    env |= {"AVOCADO_HOME": str(work / "home"), "AVOCADO_LOG_LEVEL": "warning"}
    pace = ["--pace-ms", str(PACE_MS), "--chunks", str(CHUNKS)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "canned_upstream.py"), str(upstream_port), *pace],
            env=env,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "avocado", "gateway", "--port", str(gateway_port), "--node", upstream],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_for(f"{upstream}/api/tags", processes[0], MODEL)
        wait_for(f"{gateway}/api/tags", processes[1], MODEL)
        for path in BODIES:
            wrk(upstream, path, 4, 1, work)  # warm up both paths
            wrk(gateway, path, 4, 1, work)
        print(f"non-streaming, wrk {args.seconds} s per cell; latency in ms")
        print(f"{'path':<21} {'clients':>7} {'direct rps':>10} {'gw rps':>8} {'ratio':>6}"
              f" {'p50 +ms':>8} {'p99 +ms':>8} {'errors d/gw':>11}")  # fmt: skip
        for path in BODIES:
            for clients in levels:
                direct = wrk(upstream, path, clients, args.seconds, work)
                through = wrk(gateway, path, clients, args.seconds, work)
                print(
                    f"{path:<21} {clients:>7} {direct.rps:>10.0f} {through.rps:>8.0f}"
                    f" {through.rps / direct.rps:>6.2f} {through.p50_ms - direct.p50_ms:>8.2f}"
                    f" {through.p99_ms - direct.p99_ms:>8.2f} {direct.errors:>5}/{through.errors:<5}"
                )
        print(f"\nstreaming /api/chat, {CHUNKS} chunks {PACE_MS:g} ms apart")
        header = ["clients", "added per chunk ms", "stream ms direct", "gw", "failed d/gw"]
        print(" ".join(f"{name:>{width}}" for name, width in zip(header, (7, 18, 16, 8, 11), strict=True)))
        for clients in levels:
            rounds = max(1, 64 // clients)
            direct_times, direct_failed = asyncio.run(stream_arrivals(upstream, clients, rounds))
            gateway_times, gateway_failed = asyncio.run(stream_arrivals(gateway, clients, rounds))
            total_d = statistics.median(t[-1] for t in direct_times) * 1000
            total_g = statistics.median(t[-1] for t in gateway_times) * 1000
            delay = chunk_delay_ms(direct_times, gateway_times)
            print(
                f"{clients:>7} {delay:>18.2f} {total_d:>16.1f} {total_g:>8.1f}"
                f" {direct_failed:>5}/{gateway_failed:<5}"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
