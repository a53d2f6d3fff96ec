"""Fuzz: schemathesis (``--checks all``) against a real node's and a real gateway's OpenAPI, on loopback.

    .venv/bin/python bench/fuzz.py [--minutes 5] [--targets node,gateway] [--seed N]

The bench starts everything itself, each part in its own process, in a home of its own:
- a node (``avocado serve``) with the bundled models, short generations (``max_predict``), a small
  context and memory budget, and ``pull_only_networks`` on loopback: no pull or push a fuzzed request
  asks for can connect anywhere but this machine;
- a gateway (``avocado gateway``) in front of that node, with a master key, sent with every request
  so that the keys API and model management are fuzzed too.

Each target gets ``--minutes`` of schemathesis (every phase, one worker) with the hooks of
``bench/fuzz_hooks.py``: half of the schema-valid requests that name a model name the real one, so
generations run; every answer is counted. Printed per target: cases tried (requests sent), failures per
check (unique, as schemathesis reports them), answers ``>= 500``, network errors, and whether the
server process is still alive (a crash: it is not, or requests could not connect). Exit status 1 when
any of them is not zero.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
AVOCADO = [sys.executable, "-m", "avocado"]
SCHEMATHESIS = [str(Path(sys.executable).with_name("schemathesis"))]
MODEL = "smollm2:135m"
MASTER_KEY = "fuzz-master-key-0123456789abcdef"
LOOPBACK = "127.0.0.0/8,::1/128"
UP_WITHIN = 180.0  # seconds a process may take to answer (the first start registers the models)
NODE_SETTINGS = {
    "AVOCADO_MAX_PREDICT": "16",  # fuzzed generations stay short
    "AVOCADO_NUM_CTX": "512",
    "AVOCADO_PARALLEL": "2",
    "AVOCADO_MAX_MEMORY": "2GiB",  # a fuzzed num_ctx past it is a 400, not minutes of allocation
    "AVOCADO_MAX_LOADED_MODELS": "2",
    "AVOCADO_PULL_ONLY_NETWORKS": LOOPBACK,
    "AVOCADO_UPLOAD_EXPIRY": "30s",  # fuzzed upload sessions go, so new ones are not all 429
}
_FAILURE_LINE = re.compile(r"^\s*\S+\s+(ST\d+) (.+?): (\d+)\s*$")
_CASES_LINE = re.compile(r"^\s*(\d+) generated")


@dataclass
class Result:
    target: str
    minutes: float
    cases: int = 0
    generated: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    network_errors: int = 0
    alive: bool = True
    stats: dict[str, object] = field(default_factory=dict)

    @property
    def crashes(self) -> int:
        return self.network_errors + (0 if self.alive else 1)

    @property
    def clean(self) -> bool:
        return not self.failures and self.server_errors == 0 and self.crashes == 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + UP_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited ({process.returncode}) before answering")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready within {UP_WITHIN:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def schemathesis(
    url: str, minutes: float, seed: int, work: Path, name: str, headers: list[str]
) -> tuple[str, dict[str, object]]:
    """Run schemathesis on ``url``'s document; its output and the hooks' counts."""
    stats = work / f"{name}-stats.json"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]),
        "FUZZ_MODEL": MODEL,
        "FUZZ_STATS": str(stats),
        "FUZZ_SEED": str(seed),
    }
    command = [
        *SCHEMATHESIS,
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-time",
        str(int(minutes * 60)),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--max-response-time",  # CPU inference on a shared machine: a minute, not schemathesis' 10 s
        "60",
        "--seed",
        str(seed),
        "--no-color",
        "--generation-database",
        "none",
        *[part for header in headers for part in ("-H", header)],
    ]
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
    output = done.stdout + done.stderr
    (work / f"{name}-schemathesis.txt").write_text(output)
    counts = json.loads(stats.read_text()) if stats.is_file() else {}
    return output, counts


def summarize(target: str, minutes: float, output: str, stats: dict[str, object], alive: bool) -> Result:
    result = Result(target, minutes, alive=alive, stats=stats)
    in_failures = False
    for line in output.splitlines():
        if line.strip() == "Failures:":
            in_failures = True
            continue
        if in_failures:
            match = _FAILURE_LINE.match(line)
            if match:
                result.failures[f"{match[1]} {match[2]}"] = int(match[3])
                continue
            in_failures = False
        if cases := _CASES_LINE.match(line):
            result.generated = int(cases[1])
    result.cases = int(str(stats.get("calls", 0)))
    result.server_errors = int(str(stats.get("server_errors", 0)))
    result.network_errors = int(str(stats.get("network_errors", 0)))
    return result


def report(result: Result) -> None:
    print(f"\n== {result.target}: {result.minutes:g} min")
    print(f"cases tried (requests sent): {result.cases} ({result.generated} generated)")
    print(f"statuses: {result.stats.get('statuses', {})}")
    print(f"failures: {sum(result.failures.values())}")
    for check, count in sorted(result.failures.items()):
        print(f"  {check}: {count}")
    print(f"responses >= 500: {result.server_errors}")
    print(f"crashes: {result.crashes} (network errors {result.network_errors}, alive: {result.alive})")
    refusals = result.stats.get("content_refusals") or {}
    if refusals:
        print(f"schema-valid bodies refused for their content (not failures): {refusals}")
    for sample in [*list(result.stats.get("server_error_samples") or [])][:5]:  # type: ignore[call-overload]
        print(f"  5xx: {sample}")


def run_target(
    name: str,
    server: subprocess.Popen[bytes],
    url: str,
    args: argparse.Namespace,
    work: Path,
    headers: list[str],
) -> Result:
    print(f"fuzzing {name} at {url} for {args.minutes:g} min ...", flush=True)
    output, stats = schemathesis(url, args.minutes, args.seed, work, name, headers)
    alive = server.poll() is None
    if alive:
        try:
            alive = httpx.get(f"{url}/health/live", timeout=10).status_code == 200
        except httpx.TransportError:
            alive = False
    result = summarize(name, args.minutes, output, stats, alive)
    report(result)
    return result


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="fuzzing time per target (default 5)")
    parser.add_argument("--targets", default="node,gateway", help="node, gateway or both (default)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="schemathesis' seed")
    parser.add_argument("--work", type=Path, default=None, help="keep homes, logs and outputs here")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="avocado-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"seed {args.seed}; work in {work}; load {load()}", flush=True)

    node_port, gateway_port = free_port(), free_port()
    node_url, gateway_url = f"http://127.0.0.1:{node_port}", f"http://127.0.0.1:{gateway_port}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AVOCADO_", "OLLAMA_"))}
    node_env = {**base, **NODE_SETTINGS, "AVOCADO_HOME": str(work / "node"), "AVOCADO_LOG_LEVEL": "warning"}
    node = start([*AVOCADO, "serve", "--port", str(node_port)], node_env, work / "node.log")
    processes = [node]
    results: list[Result] = []
    try:
        wait_up(node, node_url)
        if "node" in targets:
            results.append(run_target("node", node, node_url, args, work, []))
        if "gateway" in targets:
            gateway_env = {
                **base,
                "AVOCADO_HOME": str(work / "gateway"),
                "AVOCADO_MASTER_KEY": MASTER_KEY,
                "AVOCADO_LOG_LEVEL": "warning",
            }
            command = [*AVOCADO, "gateway", "--port", str(gateway_port), "--node", node_url]
            gateway = start(command, gateway_env, work / "gateway.log")
            processes.append(gateway)
            wait_up(gateway, gateway_url)
            auth = [f"Authorization: Bearer {MASTER_KEY}"]
            results.append(run_target("gateway", gateway, gateway_url, args, work, auth))
    finally:
        for process in reversed(processes):
            stop(process)
    print(f"\nload at the end {load()}; outputs in {work}")
    return 0 if all(result.clean for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
