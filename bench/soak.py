"""Soak: streaming clients through the gateway to two nodes for minutes, with nodes and the broker failing.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 64] [--broker-restart app|connections]
                                   [--prompt-cache 32MiB] [--warm-up 60] [--warm-requests 64]

One run on loopback, every part real and in its own process:
- a RabbitMQ virtual host of the run's own (made with ``rabbitmqctl``, deleted after), so no other
  node or gateway on the machine takes part;
- two nodes, ``avocado serve --announce`` with homes of their own (the bundled models hard-linked),
  and ``avocado gateway --discover`` in front of them;
- a durable queue of the bench's own bound to the announcements: what a node publishes waits there
  for the bench, through a broker restart too, so the bench sees every announcement the broker took;
- ``--clients`` clients streaming ``POST /api/chat`` through the gateway, one request after another;
- faults on a schedule: node A killed (SIGKILL: no ``offline`` announcement) at 20 % and at 50 % of
  the run and started again 30 s later each time; the broker restarted at 75 % (``app``:
  ``rabbitmqctl stop_app``/``start_app``, which drops every connection on the machine, so run it on
  a quiet machine; ``connections``: only this run's connections are closed).

Figures: requests, failures before the first byte (target 0), streams cut after their first byte
(the kills cut the streams node A was serving: counted, not failures of the gateway), time to first
byte, tokens/s; each node process's RSS at the end of its warm-up and its range after (target within
±10 %). A node's warm-up is ``--warm-requests`` chats sent to it directly after each start and at
least ``--warm-up`` seconds: counted in requests, since its allocations (slots, the prompt cache)
settle after some dozens of requests, however long those take on a busy machine. The nodes run with a
small ``--prompt-cache`` so that bounded cache is full by the end of the warm-up instead of growing
towards its 512 MiB default through the run; announcements: each node's
starts and its final ``offline`` seen by the bench, its outbox empty at the end, gaps in its
sequence (heartbeats the node coalesced while the broker was away).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aio_pika
import httpx

from avocado.config import Settings
from avocado.discovery import EXCHANGE, OUTBOX_FILE, ROUTING_KEY
from avocado.node.app import open_store

MODEL = "smollm2:135m"
WARM_UP = 60.0  # default seconds after a node starts before its RSS counts as settled
RESTART_AFTER = 30.0  # seconds a killed node stays down
UP_WITHIN = 120.0  # seconds a process may take to answer
SAMPLE_EVERY = 2.0  # seconds between RSS samples
PROMPTS = ("Name a colour.", "Say hello.", "Count to five.", "Name a fruit.", "What is 2+2?")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbitmqctl(*args: str) -> str:
    command = ["rabbitmqctl", "-q", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def launch(command: list[str], env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


async def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    try:
        async with asyncio.timeout(UP_WITHIN), httpx.AsyncClient(timeout=2) as client:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{process.args!r} exited with {process.returncode}")
                try:
                    if (await client.get(url)).status_code < 500:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise SystemExit(f"{url} did not come up") from None


@dataclass
class Life:
    """One run of a node process: when it started, and its RSS samples (seconds since start, MiB)."""

    started: float
    warm_up: float = WARM_UP
    samples: list[tuple[float, float]] = field(default_factory=list)

    def summary(self) -> str:
        settled = [rss for at, rss in self.samples if at >= self.warm_up]
        if not settled:
            return f"ran {self.samples[-1][0] if self.samples else 0:.0f} s: shorter than the warm-up"
        base = settled[0]
        low, high = min(settled), max(settled)
        flat = 0.9 * base <= low and high <= 1.1 * base
        return (
            f"after warm-up {base:.0f} MiB, then {low:.0f}-{high:.0f} MiB "
            f"({(low / base - 1) * 100:+.1f}% / {(high / base - 1) * 100:+.1f}%) over "
            f"{self.samples[-1][0] - self.warm_up:.0f} s: {'flat' if flat else 'NOT FLAT'}"
        )


class NodeProcess:
    """``avocado serve`` as a process that the bench kills and starts again on the same home and port."""

    def __init__(self, name: str, home: Path, amqp_url: str, log_dir: Path, args: argparse.Namespace) -> None:
        self.name, self.home, self.port = name, home, free_port()
        self.warm_up, self.warm_requests = args.warm_up, args.warm_requests
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AVOCADO_HOME": str(home),
            "AVOCADO_PORT": str(self.port),
            "AVOCADO_AMQP_URL": amqp_url,
            "AVOCADO_ANNOUNCE_INTERVAL": "5",
            "AVOCADO_NUM_CTX": "1024",
            "AVOCADO_PROMPT_CACHE": args.prompt_cache,
            "AVOCADO_LOG_LEVEL": "warning",
        }
        self.log = (log_dir / f"{name}.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.warming: asyncio.Task[None] | None = None
        self.lives: list[Life] = []

    async def start(self, wait_for_warm_up: bool = True) -> None:
        """Start the node; its warm-up runs on while a restart in the fault schedule goes on."""
        command = [sys.executable, "-m", "avocado", "serve"]
        self.process = launch(command, self.env, self.log)
        life = Life(time.monotonic(), math.inf)  # RSS counts once the warm-up is over
        self.lives.append(life)
        await wait_until_up(self.url + "/", self.process)
        self.warming = asyncio.create_task(self.warm_up_life(life))
        if wait_for_warm_up:
            await self.warming

    async def warm_up_life(self, life: Life) -> None:
        await self.warm()
        life.warm_up = max(self.warm_up, time.monotonic() - life.started)

    async def warm(self) -> None:
        """``warm_requests`` chats straight to this node, eight at a time."""
        body = {"model": MODEL, "stream": False, "options": {"num_predict": 24, "temperature": 0.7}}
        queue = iter(range(self.warm_requests))
        async with httpx.AsyncClient(base_url=self.url, timeout=600) as client:

            async def worker() -> None:
                for number in queue:
                    messages = [
                        {"role": "user", "content": f"{PROMPTS[number % len(PROMPTS)]} (warm {number})"}
                    ]
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post("/api/chat", json={**body, "messages": messages})

            await asyncio.gather(*(worker() for _ in range(8)))

    def kill(self) -> None:
        assert self.process is not None
        if self.warming is not None:
            self.warming.cancel()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        """SIGTERM: the node announces ``offline`` and waits for the broker's confirm."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.process = None

    def sample(self) -> None:
        if self.process is not None and self.lives:
            rss = rss_mib(self.process.pid)
            if rss is not None:
                self.lives[-1].samples.append((time.monotonic() - self.lives[-1].started, rss))

    def outbox(self) -> tuple[int, int]:
        """``(pending, last_sequence)`` in the node's outbox."""
        with sqlite3.connect(self.home / "state" / OUTBOX_FILE) as db:
            pending = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            row = db.execute("SELECT value FROM meta WHERE key = 'last_sequence'").fetchone()
        return int(pending), int(row[0]) if row else 0


@dataclass
class Tally:
    ok: int = 0
    failed_before_first_byte: int = 0
    cut_after_first_byte: int = 0
    tokens: int = 0
    first_byte: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def client_loop(gateway: str, tally: Tally, stop: asyncio.Event, number: int) -> None:
    body = {"model": MODEL, "stream": True, "options": {"num_predict": 24, "temperature": 0.7}}
    async with httpx.AsyncClient(base_url=gateway, timeout=httpx.Timeout(600, connect=10)) as client:
        turn = 0
        while not stop.is_set():
            turn += 1
            prompt = f"{PROMPTS[(number + turn) % len(PROMPTS)]} ({number}-{turn})"
            messages = [{"role": "user", "content": prompt}]
            await one_stream(client, {**body, "messages": messages}, tally)


async def one_stream(client: httpx.AsyncClient, body: dict[str, object], tally: Tally) -> None:
    sent = time.monotonic()
    seen_first = False
    try:
        async with client.stream("POST", "/api/chat", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:120]
                tally.failed_before_first_byte += 1
                tally.note(f"HTTP {response.status_code}: {text}")
                return
            async for line in response.aiter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    if seen_first:
                        tally.cut_after_first_byte += 1
                    else:
                        tally.failed_before_first_byte += 1
                    tally.note(f"error event ({'after' if seen_first else 'before'} first byte)")
                    return
                if not seen_first:
                    seen_first = True
                    tally.first_byte.append(time.monotonic() - sent)
                if chunk.get("done"):
                    tally.ok += 1
                    tally.tokens += int(chunk.get("eval_count", 0))
                    return
            tally.note("stream ended without done")
            if seen_first:
                tally.cut_after_first_byte += 1
            else:
                tally.failed_before_first_byte += 1
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        if seen_first:
            tally.cut_after_first_byte += 1
        else:
            tally.failed_before_first_byte += 1
        tally.note(f"{type(exc).__name__} ({'after' if seen_first else 'before'} first byte)")


@dataclass
class Heard:
    """Announcements the bench's durable queue received, per node: (sequence, status) in arrival order."""

    by_node: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    arrivals: dict[str, list[float]] = field(default_factory=dict)


async def listen(amqp_url: str, heard: Heard, queue_name: str) -> aio_pika.abc.AbstractRobustConnection:
    connection = await aio_pika.connect_robust(amqp_url, reconnect_interval=1)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name, durable=True)
    await queue.bind(exchange, ROUTING_KEY)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            data = json.loads(message.body)
            node = str(data["service_id"])
            heard.by_node.setdefault(node, []).append((int(data["sequence"]), str(data["status"])))
            heard.arrivals.setdefault(node, []).append(time.monotonic())

    await queue.consume(on_message)
    return connection


async def restart_broker(how: str, vhost: str) -> float:
    """Restart the broker (or close this run's connections); the seconds it took."""
    started = time.monotonic()
    if how == "app":
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        await asyncio.sleep(5)
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")
    else:
        close = ("close_all_connections", "--vhost", vhost, "--limit", "1000", "soak: broker restart")
        await asyncio.to_thread(rabbitmqctl, *close)
    return time.monotonic() - started


async def run(args: argparse.Namespace) -> int:
    # The listener's reconnection after the broker restart is expected: not worth a traceback.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="avocado-soak-"))
    vhost = f"avocado-soak-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    models = work / "models-home"
    open_store(Settings(home=models))
    nodes = []
    for name in ("node-a", "node-b"):
        home = work / name
        shutil.copytree(models / "models", home / "models", copy_function=os.link)
        shutil.copytree(models / "state", home / "state")
        nodes.append(NodeProcess(name, home, amqp_url, work, args))
    heard = Heard()
    listener = await listen(amqp_url, heard, f"soak-{uuid.uuid4().hex[:8]}")
    gateway_port = free_port()
    gateway_env = {**os.environ, "AVOCADO_HOME": str(work / "gateway"), "AVOCADO_LOG_LEVEL": "warning"}
    gateway_log = (work / "gateway.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "avocado",
        "gateway",
        "--port",
        str(gateway_port),
        "--discover",
        amqp_url,
    ]
    gateway = launch(command, gateway_env, gateway_log)
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    tally, stop = Tally(), asyncio.Event()
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        await wait_until_up(gateway_url + "/", gateway)
        await wait_for_nodes(gateway_url, 2)
        print(f"soak: {args.clients} clients for {args.minutes} min; logs in {work}", flush=True)
        duration = args.minutes * 60
        began = time.monotonic()
        clients = [asyncio.create_task(client_loop(gateway_url, tally, stop, i)) for i in range(args.clients)]
        sampler = asyncio.create_task(sample(nodes, stop))
        events = await faults(nodes[0], began, duration, args.broker_restart, vhost)
        await asyncio.sleep(max(0.0, began + duration - time.monotonic()))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), timeout=600)
        elapsed = time.monotonic() - began
        await sampler
        for node in nodes:
            node.stop()
        await wait_for_offline(heard, nodes)
        report(tally, elapsed, nodes, heard, events)
    finally:
        stop.set()
        for node in nodes:
            if node.process is not None:
                node.process.kill()
        gateway.terminate()
        gateway.wait(timeout=30)
        await listener.close()
        rabbitmqctl("delete_vhost", vhost)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if tally.failed_before_first_byte == 0 else 1


async def wait_for_nodes(gateway_url: str, count: int) -> None:
    try:
        async with asyncio.timeout(UP_WITHIN), httpx.AsyncClient(timeout=5) as client:
            while True:
                listed = (await client.get(gateway_url + "/api/avocado/nodes")).json()
                nodes = listed.get("nodes", listed) if isinstance(listed, dict) else listed
                if sum(1 for node in nodes if node.get("healthy")) >= count:
                    return
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise SystemExit("the gateway did not discover both nodes") from None


async def sample(nodes: list[NodeProcess], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for node in nodes:
            node.sample()
        await asyncio.sleep(SAMPLE_EVERY)


async def faults(node: NodeProcess, began: float, duration: float, broker: str, vhost: str) -> list[str]:
    """Kill and restart ``node`` twice, restart the broker once; what happened when."""
    events: list[str] = []

    async def at(fraction: float) -> float:
        await asyncio.sleep(max(0.0, began + fraction * duration - time.monotonic()))
        return time.monotonic() - began

    for fraction in (0.2, 0.5):
        when = await at(fraction)
        node.kill()
        events.append(f"{when:6.0f} s  {node.name} killed")
        await asyncio.sleep(RESTART_AFTER)
        await node.start()
        events.append(f"{time.monotonic() - began:6.0f} s  {node.name} serving again")
    when = await at(0.75)
    took = await restart_broker(broker, vhost)
    events.append(f"{when:6.0f} s  broker restarted ({broker}, {took:.1f} s)")
    return events


async def wait_for_offline(heard: Heard, nodes: list[NodeProcess]) -> None:
    """Until the bench heard every node's last word, ``offline`` (or a minute passed: the report says)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            while True:
                finals = [seen[-1][1] for seen in heard.by_node.values() if seen]
                if len(finals) == len(nodes) and all(status == "offline" for status in finals):
                    return
                await asyncio.sleep(0.2)


def report(tally: Tally, elapsed: float, nodes: list[NodeProcess], heard: Heard, events: list[str]) -> None:
    total = tally.ok + tally.failed_before_first_byte + tally.cut_after_first_byte
    ttfb = sorted(tally.first_byte) or [0.0]
    print(f"\n== soak: {elapsed / 60:.1f} min ==")
    print("\n".join(events))
    print(
        f"requests {total}: completed {tally.ok}, failed before first byte {tally.failed_before_first_byte}"
        f" (target 0), cut after first byte {tally.cut_after_first_byte}"
    )
    print(
        f"first byte: median {statistics.median(ttfb):.2f} s, p99 {ttfb[int(len(ttfb) * 0.99)]:.2f} s;"
        f" {tally.tokens / elapsed:.1f} tokens/s generated"
    )
    for kind, count in sorted(tally.errors.items(), key=lambda item: -item[1]):
        print(f"  {count:6d}  {kind}")
    for node in nodes:
        print(f"{node.name} RSS:")
        for number, life in enumerate(node.lives, 1):
            print(f"  life {number}: {life.summary()}")
    print("announcements (the bench's durable queue):")
    for node, service_id in zip(nodes, identities(nodes), strict=True):
        seen = heard.by_node.get(service_id, [])
        pending, last = node.outbox()
        sequences = [sequence for sequence, _ in seen]
        gaps = sum(1 for a, b in itertools.pairwise(sequences) if b != a + 1)
        ordered = sequences == sorted(sequences)
        arrivals = heard.arrivals.get(service_id, [])
        widest = max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)
        final = seen[-1] if seen else None
        print(
            f"  {node.name}: {len(seen)} received, in order: {ordered}, gaps {gaps}, widest silence "
            f"{widest:.1f} s; last received {final}; outbox last sequence {last}, pending {pending}: "
            f"{'all delivered' if final == (last, 'offline') and pending == 0 else 'NOT ALL DELIVERED'}"
        )


def identities(nodes: list[NodeProcess]) -> list[str]:
    return [(node.home / "state" / "service-id").read_text().strip() for node in nodes]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--broker-restart", choices=("app", "connections"), default="app")
    parser.add_argument("--prompt-cache", default="32MiB", help="each node's prompt cache (bounded)")
    parser.add_argument("--warm-up", type=float, default=WARM_UP, help="seconds before RSS counts, at least")
    parser.add_argument("--warm-requests", type=int, default=64, help="chats each node serves to warm up")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, homes)")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
