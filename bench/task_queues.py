"""Task queues for the platform's background jobs: taskiq against dramatiq, on the same brokers.

    nice -n 10 .venv/bin/python bench/task_queues.py [--jobs 2000] [--latency 300]
        [--brokers memory,redis,rabbitmq]

For each library and broker (in-process, Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672) the
producer and a worker run in this process, as the platform runs them (every replica both queues and
works). A job does nothing but note when it ran, so what is measured is the queue's own cost:

- latency: one job at a time, enqueue to done (p50, p99 of ``--latency`` jobs);
- throughput: ``--jobs`` enqueued by 8 producers at once (requests queueing jobs together), jobs
  done per second until the last.

Both publish persistently with publisher confirms on RabbitMQ (dramatiq's ``confirm_delivery`` is
turned on to match aio-pika's default), so neither is faster for having promised less.

dramatiq's in-process mode is its ``StubBroker`` with a ``Worker`` (threads), the way its docs run
tests. Queue, stream and namespace names are random per run and removed at the end: the brokers are
shared with other programs.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PRODUCERS = 8  # requests queueing jobs at the same time
REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


class Done:
    """Completion times of jobs, by id; a waiter for one, or for a count."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.cond = threading.Condition()

    def mark(self, job: int) -> None:
        with self.cond:
            self.at[job] = time.perf_counter()
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError("jobs did not finish in time")


def summary(latencies: list[float], jobs: int, elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "jobs_per_s": jobs / elapsed,
    }


# -- taskiq -----------------------------------------------------------------------------------------


async def _taskiq(broker_url: str | None, queue: str, jobs: int, samples: int) -> dict[str, float]:
    from taskiq.receiver import Receiver

    from avocado.platform.jobs import make_broker

    broker = make_broker(broker_url, queue)
    done = Done()
    loop_done: dict[int, asyncio.Event] = {}

    async def job(number: int) -> None:
        done.mark(number)
        event = loop_done.get(number)
        if event is not None:
            event.set()

    task = broker.register_task(job, task_name="bench.job")
    stop = asyncio.Event()
    worker = None
    if broker_url is not None:
        broker.is_worker_process = True
    await broker.startup()
    if broker_url is not None:
        worker = asyncio.create_task(Receiver(broker, run_startup=False, max_async_tasks=64).listen(stop))
    try:
        await task.kiq(-1)  # connections and consumers warm
        latencies = []
        for number in range(samples):
            loop_done[number] = asyncio.Event()
            began = time.perf_counter()
            await task.kiq(number)
            await loop_done[number].wait()
            latencies.append(done.at[number] - began)
        first = samples
        began = time.perf_counter()
        numbers = iter(range(first, first + jobs))

        async def produce() -> None:
            for number in numbers:  # shared: each producer takes the next number
                await task.kiq(number)

        await asyncio.gather(*(produce() for _ in range(PRODUCERS)))
        await asyncio.to_thread(done.wait_for, lambda: sum(1 for n in done.at if n >= first) >= jobs)
        elapsed = max(done.at[n] for n in range(first, first + jobs)) - began
        return summary(latencies, jobs, elapsed)
    finally:
        stop.set()
        if worker is not None:  # bounded as the platform bounds it (avocado.platform.jobs.Jobs.close)
            await asyncio.wait({worker}, timeout=10)
            worker.cancel()
            await asyncio.wait({worker}, timeout=2)
        await asyncio.wait({asyncio.ensure_future(broker.shutdown())}, timeout=10)


def taskiq_run(broker_url: str | None, queue: str, jobs: int, samples: int) -> dict[str, float]:
    return asyncio.run(_taskiq(broker_url, queue, jobs, samples))


# -- dramatiq ---------------------------------------------------------------------------------------


def dramatiq_run(kind: str, queue: str, jobs: int, samples: int) -> dict[str, float]:
    import dramatiq
    from dramatiq import Worker

    broker: Any
    if kind == "memory":
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker()
    elif kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=REDIS, namespace=queue)  # type: ignore[no-untyped-call]
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=AMQP, confirm_delivery=True)  # as aio-pika's publisher confirms
    dramatiq.set_broker(broker)
    done = Done()

    @dramatiq.actor(queue_name=queue, broker=broker, max_retries=0)
    def job(number: int) -> None:
        done.mark(number)

    worker = Worker(broker, worker_threads=8, worker_timeout=100)
    worker.start()
    try:
        job.send(-1)
        done.wait_for(lambda: -1 in done.at)
        latencies = []
        for number in range(samples):
            began = time.perf_counter()
            job.send(number)
            done.wait_for(lambda number=number: number in done.at)  # type: ignore[misc]
            latencies.append(done.at[number] - began)
        first = samples
        began = time.perf_counter()
        with ThreadPoolExecutor(PRODUCERS) as producers:
            list(producers.map(job.send, range(first, first + jobs)))
        done.wait_for(lambda: sum(1 for n in done.at if n >= first) >= jobs)
        elapsed = max(done.at[n] for n in range(first, first + jobs)) - began
        return summary(latencies, jobs, elapsed)
    finally:
        worker.stop()
        _drop_dramatiq(broker, kind, queue)
        broker.close()


def _drop_dramatiq(broker: Any, kind: str, queue: str) -> None:
    if kind == "rabbitmq":
        channel = broker.channel
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    elif kind == "redis":
        keys = broker.client.keys(f"{queue}:*")
        if keys:
            broker.client.delete(*keys)


def _drop_taskiq(kind: str, queue: str) -> None:
    if kind == "redis":
        import redis

        with redis.Redis.from_url(REDIS) as client:
            client.delete(queue)
    elif kind == "rabbitmq":
        import aio_pika

        async def drop() -> None:
            async with await aio_pika.connect(AMQP) as connection:
                channel = await connection.channel()
                await channel.queue_delete(queue)
                await channel.exchange_delete(queue)

        asyncio.run(drop())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=300)
    parser.add_argument("--brokers", default="memory,redis,rabbitmq")
    args = parser.parse_args()
    urls = {"memory": None, "redis": REDIS, "rabbitmq": AMQP}
    print(f"{'library':9} {'broker':9} {'p50 ms':>8} {'p99 ms':>8} {'jobs/s':>9}")
    for kind in args.brokers.split(","):
        for library in ("taskiq", "dramatiq"):
            queue = f"avocado.bench.{secrets.token_hex(4)}"
            if library == "taskiq":
                try:
                    result = taskiq_run(urls[kind], queue, args.jobs, args.latency)
                finally:
                    _drop_taskiq(kind, queue)
            else:
                result = dramatiq_run(kind, queue, args.jobs, args.latency)
            figures = f"{result['p50_ms']:8.2f} {result['p99_ms']:8.2f} {result['jobs_per_s']:9.0f}"
            print(f"{library:9} {kind:9} {figures}", flush=True)


if __name__ == "__main__":
    main()
