"""How fast a node's whereabouts reach a consumer over RabbitMQ.

    .venv/bin/python bench/discovery.py [--amqp URL] [--starts 5] [--changes 50]

One run, three measurements against the broker on loopback (default amqp://guest:guest@127.0.0.1:5672/):
1. Start: ``avocado serve --announce`` as a process, from its launch to its first announcement
   reaching a consumer, next to the time until it answers ``GET /`` (median of ``--starts``).
2. URL change: a node's announcer told its URL changed (what the tunnel supervisor does), until the
   consumer's registry holds the new URL: outbox write, publish with confirms, delivery, parse.
3. Reference: the broker's own round trip, one bare aio-pika publish to one consumer on the same
   exchange (no outbox, no confirms), so the ratio shows what our path adds.
Target: URL change to consumer <= 50 ms median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import httpx

from avocado.config import Settings
from avocado.discovery import (
    EXCHANGE,
    Announcement,
    Announcer,
    AnnounceState,
    DiscoveryWatcher,
    Outbox,
    Registry,
)
from avocado.node.app import open_store

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


class Arrivals(Registry):
    """A registry that notes when each accepted announcement arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[tuple[str, str], float] = {}  # (service_id, url) -> perf_counter at arrival

    def apply(self, announcement: Announcement) -> bool:
        accepted = super().apply(announcement)
        self.arrived.setdefault((announcement.service_id, announcement.url), time.perf_counter())
        return accepted


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(values) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(values)})"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_start(broker: str, models_home: Path, work: Path, arrivals: Arrivals) -> tuple[float, float]:
    """Seconds from launching ``avocado serve --announce`` to answering GET / and to its announcement."""
    home = work / uuid.uuid4().hex
    shutil.copytree(models_home / "models", home / "models", copy_function=os.link)
    shutil.copytree(models_home / "state", home / "state")
    (home / "state" / "service-id").unlink(missing_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AVOCADO_HOME": str(home), "AVOCADO_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "avocado", "serve", "--port", str(port), "--announce", broker]
    launched = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*command, env=env, stderr=subprocess.DEVNULL)
    answered = 0.0
    try:
        async with httpx.AsyncClient() as client:
            while not answered:
                try:
                    if (await client.get(url, timeout=1)).is_success:
                        answered = time.perf_counter()
                except httpx.TransportError:
                    await asyncio.sleep(0.005)
        await arrivals.wait_for(lambda _: any(u == url for _, u in arrivals.arrived), timeout=60)
        announced = next(t for (_, u), t in arrivals.arrived.items() if u == url)
    finally:
        process.terminate()
        await process.wait()
    return answered - launched, announced - launched


async def url_changes(broker: str, work: Path, arrivals: Arrivals, count: int) -> list[float]:
    """Seconds from ``changed()`` with a new URL to the consumer holding it."""
    current = {"url": "https://start.example"}
    service_id = f"bench-{uuid.uuid4()}"
    outbox = Outbox(work / "outbox.sqlite3")
    announcer = Announcer(
        broker, outbox, lambda: AnnounceState(url=current["url"]), service_id=service_id, interval=3600
    )
    await announcer.start()
    await announcer.flush()
    delays = []
    try:
        for i in range(count):
            current["url"] = f"https://change-{i}.example"
            started = time.perf_counter()
            announcer.changed()
            key = (service_id, current["url"])
            await arrivals.wait_for(lambda _: key in arrivals.arrived, timeout=10)  # noqa: B023
            delays.append(arrivals.arrived[(service_id, current["url"])] - started)
    finally:
        await announcer.close(offline=True)
        outbox.close()
    return delays


async def bare_round_trips(broker: str, count: int) -> list[float]:
    """Seconds for one plain publish to reach one consumer, same broker and exchange."""
    key = f"bench.roundtrip.{uuid.uuid4().hex}"
    connection = await aio_pika.connect(broker)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, key)
        got: asyncio.Queue[float] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await got.put(time.perf_counter())

        await queue.consume(on_message, no_ack=True)
        delays = []
        for _ in range(count):
            started = time.perf_counter()
            await exchange.publish(aio_pika.Message(b"{}"), routing_key=key)
            delays.append(await got.get() - started)
        return delays
    finally:
        await connection.close()


async def main_async(broker: str, starts: int, changes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="avocado-bench-discovery-"))
    models_home = work / "models-home"
    open_store(Settings(home=models_home))  # bundled models registered once, hard-linked per start
    arrivals = Arrivals()
    try:
        async with DiscoveryWatcher(broker, arrivals):
            start_times = [await serve_start(broker, models_home, work, arrivals) for _ in range(starts)]
            change_times = await url_changes(broker, work, arrivals, changes)
        bare = await bare_round_trips(broker, changes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("start: avocado serve --announce, from launch")
    print(f"  answers GET /          {ms([a for a, _ in start_times])}")
    print(f"  announcement arrives   {ms([b for _, b in start_times])}")
    print("URL change to consumer")
    print(f"  avocado announcer      {ms(change_times)}   (target: median <= 50 ms)")
    print(f"  bare aio-pika publish  {ms(bare)}")
    ratio = statistics.median(change_times) / statistics.median(bare)
    print(f"  ratio announcer / bare publish: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--amqp", default=os.environ.get("AVOCADO_AMQP_URL", BROKER), help="broker URL")
    parser.add_argument("--starts", type=int, default=5, help="serve starts to time")
    parser.add_argument("--changes", type=int, default=50, help="URL changes to time")
    args = parser.parse_args()
    asyncio.run(main_async(args.amqp, args.starts, args.changes))


if __name__ == "__main__":
    main()
