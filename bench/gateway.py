"""What the gateway adds: the same load on a node called directly and through ``avocado gateway``.

    .venv/bin/python bench/gateway.py [--seconds 8] [--clients 1,16,64] [--litellm PATH]

The node is ``bench/canned_upstream.py``: canned Ollama/OpenAI answers at once, after a fixed time,
or streamed at a fixed pace, so that what is measured is the proxy, not a model. One run, each path
in turn, the same load on each:

1. Instant answers, non-streaming ``POST /v1/chat/completions`` (as the LiteLLM figures in the issue
   were measured) and ``POST /api/chat``, driven by ``wrk`` (Debian package ``wrk``): requests/s,
   latency p50/p99 and errors, direct and through the gateway; added latency = gateway - direct.
   With ``--litellm`` (a ``litellm`` executable, e.g. from ``pip install 'litellm[proxy]'`` in a
   separate virtualenv; default: ``$LITELLM`` or ``litellm`` on ``PATH``), the LiteLLM proxy in front
   of the same upstream takes the same ``/v1`` load: the issue's reference, measured in the same run.
2. Answers that take 20 ms, as a fast model would: the same, at the client counts above 1.
3. Streaming ``POST /api/chat`` (20 chunks, 10 ms apart) from an asyncio client: when each chunk
   arrives after the request was sent; added delay per chunk = median over chunks of the difference
   in median arrival, for the gateway and for ``bench/tcp_relay.py`` (bytes copied through a Python
   process, no HTTP: the floor for any extra hop on this machine).

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
ANSWER_MS = 20.0
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
    parser.add_argument("--litellm", default=os.environ.get("LITELLM") or shutil.which("litellm"))
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark drives HTTP load with wrk: apt-get install wrk")

    with Services(args.litellm) as services:
        instant(services, levels, args.seconds)
        paced(services, [c for c in levels if c > 1], args.seconds)
        streaming(services, levels)


class Services:
    """The upstreams, the gateway in front of each, the relay and (optionally) LiteLLM."""

    def __init__(self, litellm: str | None) -> None:
        self.litellm_bin = litellm
        self.work = Path(tempfile.mkdtemp(prefix="avocado-bench-gateway-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
        self.env |= {"AVOCADO_HOME": str(self.work / "home"), "AVOCADO_LOG_LEVEL": "warning"}

    def __enter__(self) -> Services:
        pace = ["--pace-ms", str(PACE_MS), "--chunks", str(CHUNKS)]
        self.upstream = self._upstream(pace)
        self.slow_upstream = self._upstream([*pace, "--answer-ms", str(ANSWER_MS)])
        self.gateway = self._gateway(self.upstream)
        self.slow_gateway = self._gateway(self.slow_upstream)
        port = free_port()
        relay = [sys.executable, str(HERE / "tcp_relay.py"), str(port), self.upstream.rsplit(":", 1)[1]]
        self.processes.append(subprocess.Popen(relay, env=self.env))
        self.relay = f"http://127.0.0.1:{port}"
        wait_for(f"{self.relay}/api/tags", self.processes[-1], MODEL)
        self.litellm = self._litellm() if self.litellm_bin else None
        for url in (self.upstream, self.gateway):
            for path in BODIES:
                wrk(url, path, 4, 1, self.work)  # warm up
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    def _upstream(self, options: list[str]) -> str:
        port = free_port()
        command = [sys.executable, str(HERE / "canned_upstream.py"), str(port), *options]
        self.processes.append(subprocess.Popen(command, env=self.env))
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/api/tags", self.processes[-1], MODEL)
        return url

    def _gateway(self, upstream: str) -> str:
        port = free_port()
        command = [sys.executable, "-m", "avocado", "gateway", "--port", str(port), "--node", upstream]
        self.processes.append(subprocess.Popen(command, env=self.env, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/api/tags", self.processes[-1], MODEL)
        return url

    def _litellm(self) -> str:
        assert self.litellm_bin is not None
        port = free_port()
        config = self.work / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            f'  - model_name: "{MODEL}"\n'
            "    litellm_params:\n"
            f'      model: "openai/{MODEL}"\n'
            f'      api_base: "{self.upstream}/v1"\n'
            '      api_key: "unused"\n'
        )
        env = {
            **self.env,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the internet at start
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",  # as the gateway: no keys
            "LITELLM_LOG": "ERROR",
        }
        command = [self.litellm_bin, "--config", str(config), "--port", str(port), "--host", "127.0.0.1"]
        self.processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # LiteLLM has no /api/tags: wait for an answer
            try:
                if httpx.post(f"{url}/v1/chat/completions", json=BODIES["/v1/chat/completions"]).is_success:
                    return url
            except httpx.TransportError:
                pass
            if self.processes[-1].poll() is not None:
                raise SystemExit(f"litellm exited with {self.processes[-1].returncode}")
            time.sleep(0.5)
        raise SystemExit("litellm did not come up")


def instant(services: Services, levels: list[int], seconds: int) -> None:
    print(f"1. instant answers, non-streaming; wrk {seconds} s per cell; latency in ms")
    header = f"{'path':<21} {'clients':>7} {'direct rps':>10} {'gw rps':>8} {'gw/direct':>9}"
    header += f" {'gw p50 +ms':>10} {'gw p99 +ms':>10} {'errors d/gw':>11}"
    if services.litellm:
        header += f" {'litellm rps':>11} {'litellm p50 +ms':>15} {'gw/litellm':>10} {'errors':>6}"
    print(header)
    for path in BODIES:
        for clients in levels:
            direct = wrk(services.upstream, path, clients, seconds, services.work)
            through = wrk(services.gateway, path, clients, seconds, services.work)
            line = (
                f"{path:<21} {clients:>7} {direct.rps:>10.0f} {through.rps:>8.0f}"
                f" {through.rps / direct.rps:>9.2f} {through.p50_ms - direct.p50_ms:>10.2f}"
                f" {through.p99_ms - direct.p99_ms:>10.2f} {direct.errors:>5}/{through.errors:<5}"
            )
            if services.litellm and path.startswith("/v1/"):
                other = wrk(services.litellm, path, clients, seconds, services.work)
                line += (
                    f" {other.rps:>11.0f} {other.p50_ms - direct.p50_ms:>15.2f}"
                    f" {through.rps / other.rps:>10.1f} {other.errors:>6}"
                )
            print(line, flush=True)


def paced(services: Services, levels: list[int], seconds: int) -> None:
    print(f"\n2. answers that take {ANSWER_MS:g} ms (a fast model), non-streaming /api/chat")
    print(
        f"{'clients':>7} {'direct rps':>10} {'gw rps':>8} {'gw/direct':>9}"
        f" {'gw p50 +ms':>10} {'errors d/gw':>11}"
    )
    for clients in levels:
        direct = wrk(services.slow_upstream, "/api/chat", clients, seconds, services.work)
        through = wrk(services.slow_gateway, "/api/chat", clients, seconds, services.work)
        print(
            f"{clients:>7} {direct.rps:>10.0f} {through.rps:>8.0f} {through.rps / direct.rps:>9.2f}"
            f" {through.p50_ms - direct.p50_ms:>10.2f} {direct.errors:>5}/{through.errors:<5}",
            flush=True,
        )


def streaming(services: Services, levels: list[int]) -> None:
    print(f"\n3. streaming /api/chat, {CHUNKS} chunks {PACE_MS:g} ms apart; per-chunk delay added, ms")
    print(
        f"{'clients':>7} {'gateway':>8} {'tcp relay':>9} {'stream ms direct':>16} {'gw':>6}"
        f" {'failed d/gw/relay':>17}"
    )
    for clients in levels:
        rounds = max(1, 64 // clients)
        direct, direct_failed = asyncio.run(stream_arrivals(services.upstream, clients, rounds))
        through, gw_failed = asyncio.run(stream_arrivals(services.gateway, clients, rounds))
        relayed, relay_failed = asyncio.run(stream_arrivals(services.relay, clients, rounds))
        total_d = statistics.median(t[-1] for t in direct) * 1000
        total_g = statistics.median(t[-1] for t in through) * 1000
        print(
            f"{clients:>7} {chunk_delay_ms(direct, through):>8.2f} {chunk_delay_ms(direct, relayed):>9.2f}"
            f" {total_d:>16.1f} {total_g:>6.1f} {direct_failed:>7}/{gw_failed}/{relay_failed}",
            flush=True,
        )


if __name__ == "__main__":
    main()
