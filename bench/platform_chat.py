"""Chat through the platform (issue 19): what it adds to a model's answer, what a long conversation
costs, the sidebar and search at scale, many concurrent streams, and a replica killed mid-answer.

    .venv/bin/python bench/platform_chat.py [--quick] [--only model,append,sidebar,search,streams,replicas]
        [--messages 1000000] [--users 100] [--no-openwebui]

Every part starts real processes (``avocado serve``, ``avocado gateway``, ``avocado platform``) on
loopback, on a temporary home; ``bench/canned_upstream.py`` stands in for the model where the
model's own time would drown what is measured (it answers at once, or at a fixed pace). Search and
the sidebar run on SQLite and on PostgreSQL (``AVOCADO_BENCH_POSTGRES``, default the loopback
server of ENVIRONMENT.md); the replica part needs PostgreSQL and Redis. ``append`` and ``search``
then measure Open WebUI the same way (bench/openwebui_anchor.py, in its own virtualenv
``AVOCADO_BENCH_OPENWEBUI``, default ``bench/.openwebui-venv``; skipped with the reason where it is not
installed, or with ``--no-openwebui``). Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openwebui_anchor
from sqlalchemy import create_engine, insert, select, text, update

from avocado.db.migrate import upgrade
from avocado.db.migrations.versions.v0010_conversations import OWNER
from avocado.lean_http import Upstream, UpstreamError, UpstreamResponse
from avocado.platform.conversations.models import Conversation, Message

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMOLLM = "smollm2:135m"
CANNED = "canned:latest"
PASSWORD = "correct horse battery"
POSTGRES = os.environ.get("AVOCADO_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("AVOCADO_BENCH_REDIS", "redis://127.0.0.1:6379/7")
WRITTEN = 20  # pieces of an answer before it counts as being written (1 s of the replica part's pace)
LIGHT_ARGON2 = {"AVOCADO_PLATFORM_ARGON2_MEMORY": "64", "AVOCADO_PLATFORM_ARGON2_TIME": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.2f} ms, p99 {pct(values, 0.99) * 1000:.2f} ms"


class Processes:
    """Servers started for one part, stopped (and their home removed) at its end."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="avocado-bench-chat-"))
        self.started: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AVOCADO_")}
        self.env |= {"AVOCADO_HOME": str(self.work / "home"), "AVOCADO_LOG_LEVEL": "warning", **LIGHT_ARGON2}

    def start(self, command: list[str], url: str, ready: str, env: dict[str, str] | None = None) -> str:
        log = open(self.work / f"process-{len(self.started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(command, env={**self.env, **(env or {})}, stdout=log, stderr=log)
        self.started.append(process)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{command} exited: see {log.name}")
            try:
                if httpx.get(url + ready, timeout=2).status_code < 500:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{command} did not come up")

    def canned(self, *options: str) -> str:
        port = free_port()
        command = [sys.executable, str(HERE / "canned_upstream.py"), str(port), *options]
        return self.start(command, f"http://127.0.0.1:{port}", "/api/tags")

    def node(self, threads: int | None = None) -> str:
        port = free_port()
        command = [sys.executable, "-m", "avocado", "serve", "--port", str(port)]
        env = {"AVOCADO_NUM_THREAD": str(threads)} if threads else None
        return self.start(command, f"http://127.0.0.1:{port}", "/api/tags", env)

    def gateway(self, node: str) -> str:
        port = free_port()
        command = [sys.executable, "-m", "avocado", "gateway", "--port", str(port), "--node", node]
        url = self.start(command, f"http://127.0.0.1:{port}", "/api/tags")
        deadline = time.monotonic() + 60
        while SMOLLM not in httpx.get(f"{url}/api/tags").text and time.monotonic() < deadline:
            time.sleep(0.2)
        return url

    def platform(self, upstream: str, database: str, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        command = [sys.executable, "-m", "avocado", "platform", "--port", str(port), "--upstream", upstream]
        settings = {"AVOCADO_DATABASE_URL": database, **env}
        url = self.start(command, f"http://127.0.0.1:{port}", "/api/v1/health", settings)
        return url, self.started[-1]

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.work, ignore_errors=True)


@contextmanager
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one part, dropped at its end."""
    name = f"bench_chat_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        POSTGRES.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


# -- users and the API ------------------------------------------------------------------------------


def sign_up(url: str, count: int) -> list[tuple[str, dict[str, str]]]:
    """``count`` active users (the first is the admin, who approves the rest): (id, auth headers)."""
    users: list[tuple[str, dict[str, str]]] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for n in range(count):
            email = f"user{n}@example.com"
            user = http.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": f"U{n}"}
            )
            user.raise_for_status()
            if n:
                http.patch(
                    f"/api/v1/admin/users/{user.json()['id']}", json={"status": "active"}, headers=users[0][1]
                )
            tokens = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
            users.append((user.json()["id"], {"Authorization": f"Bearer {tokens['access_token']}"}))
    return users


def create_chat(http: httpx.Client, auth: dict[str, str], model: str, **fields: Any) -> str:
    response = http.post("/api/v1/conversations", json={"model": model, **fields}, headers=auth)
    response.raise_for_status()
    chat_id: str = response.json()["id"]
    return chat_id


def send_timed(
    http: httpx.Client, auth: dict[str, str], chat_id: str, content: str
) -> tuple[float, float, int, float]:
    """(seconds to the first token, seconds from it to the end, tokens the model counted, seconds from
    the first token to the last)."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    event = ""
    with http.stream(
        "POST", f"/api/v1/conversations/{chat_id}/messages", json={"content": content}, headers=auth
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "delta":
                last = time.perf_counter()
                first = first or last
            elif line.startswith("data:") and event == "done":
                tokens = json.loads(line[5:])["usage"]["completion_tokens"]
            elif line.startswith("data:") and event == "failed":
                raise SystemExit(f"an answer failed: {line}")
    return first - started, time.perf_counter() - first, tokens, last - first


def gateway_timed(
    http: httpx.Client, url: str, content: str, options: dict[str, Any], model: str = SMOLLM
) -> tuple[float, float, int, float]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "options": options,
    }
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with http.stream("POST", f"{url}/api/chat", json=body) as response:
        for line in response.iter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if chunk.get("message", {}).get("content"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("done"):
                tokens = chunk.get("eval_count", 0)
    return first - started, time.perf_counter() - first, tokens, last - first


# -- parts ------------------------------------------------------------------------------------------


def part_model(reps: int, node_threads: int | None = None) -> None:
    """The same question through the platform and straight to the gateway, alternated (real model).
    ``node_threads``: the model's threads (default all cores, which then compete with the platform's)."""
    options = {"temperature": 0, "seed": 42, "num_predict": 48}
    with processes() as started:
        gateway = started.gateway(started.node(node_threads))
        platform, _ = started.platform(gateway, f"sqlite:///{started.work}/platform.sqlite3")
        ((_, auth),) = sign_up(platform, 1)
        through: list[tuple[float, float, int, float]] = []
        direct: list[tuple[float, float, int, float]] = []
        with httpx.Client(base_url=platform, timeout=300) as http:
            for rep in range(reps + 1):
                # Different questions (no shared prefix in the node's prompt cache), and who goes
                # first alternates: neither side gets the other's warm cache
                mine, theirs = (f"Write three sentences about the number {rep * 2 + n}." for n in (0, 1))
                if rep % 2:  # and each side gets the even and the odd questions in turn
                    mine, theirs = theirs, mine
                # titled: no title job on the model to slow what comes next
                chat_id = create_chat(http, auth, SMOLLM, options=options, title=f"bench {rep}")
                if rep % 2:
                    other = gateway_timed(http, gateway, theirs, options)
                    one = send_timed(http, auth, chat_id, mine)
                else:
                    one = send_timed(http, auth, chat_id, mine)
                    other = gateway_timed(http, gateway, theirs, options)
                if rep:  # the first pair warms the model
                    through.append(one)
                    direct.append(other)
    ttft_p = statistics.median(t[0] for t in through)
    ttft_g = statistics.median(t[0] for t in direct)
    # each pair ran back to back: the median of their differences is steadier than the difference of
    # the medians when the machine's pace drifts during the run
    paired = statistics.median(one[0] - other[0] for one, other in zip(through, direct, strict=True))
    rate_p = statistics.median(t[2] / t[1] for t in through if t[1] > 0)
    rate_g = statistics.median(t[2] / t[1] for t in direct if t[1] > 0)
    print(
        f"model: time to first token p50 platform {ttft_p * 1000:.1f} ms, gateway {ttft_g * 1000:.1f} ms, "
        f"added {(ttft_p - ttft_g) * 1000:+.1f} ms (target <= 5); median of the pairs' differences "
        f"{paired * 1000:+.1f} ms"
    )
    print(
        f"model: tokens/s p50 platform {rate_p:.1f}, gateway {rate_g:.1f}, "
        f"ratio {rate_p / rate_g:.3f} (target >= 0.98; from the first token to the end of the answer)"
    )
    # The text's own pace, the first token to the last (the end adds the platform's storing of the
    # answer, which the `done` event waits for)
    pace_p = statistics.median((t[2] - 1) / t[3] for t in through if t[3] > 0)
    pace_g = statistics.median((t[2] - 1) / t[3] for t in direct if t[3] > 0)
    print(
        f"model: tokens/s from the first token to the last p50 platform {pace_p:.1f}, gateway {pace_g:.1f}, "
        f"ratio {pace_p / pace_g:.3f}"
    )


def seed_path(database: str, user_id: str, chat_id: str, length: int) -> None:
    """``length`` more messages on conversation ``chat_id``'s path (user and assistant in turn)."""
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    now = datetime.now(UTC) - timedelta(days=1)
    with engine.begin() as connection:
        leaf = connection.scalar(select(Conversation.leaf_id).where(Conversation.id == chat_id))
        depth = (
            0
            if leaf is None
            else 1 + int(connection.scalar(select(Message.depth).where(Message.id == leaf)) or 0)
        )
        rows: list[dict[str, Any]] = []
        for n in range(length):
            mid = str(uuid.uuid4())
            role = "user" if (depth + n) % 2 == 0 else "assistant"
            content = f"message {n}: " + "words " * 20
            rows.append({
                "id": mid, "conversation_id": chat_id, "user_id": user_id, "parent_id": leaf, "role": role,
                "content": content, "model": CANNED if role == "assistant" else None, "depth": depth + n,
                "tokens": 30, "usage": None, "status": "done", "error": None, "done_reason": None,
                "context_depth": None, "stop_requested": False, "created_at": now + timedelta(milliseconds=n),
                "updated_at": now + timedelta(milliseconds=n),
            })  # fmt: skip
            leaf = mid
        connection.execute(insert(Message), rows)
        connection.execute(
            update(Conversation)
            .where(Conversation.id == chat_id)
            .values(leaf_id=leaf, message_count=Conversation.message_count + length)
        )
    engine.dispose()


def part_append(reps: int, openwebui: bool = True) -> None:
    """Append-and-first-token in a conversation of 5,000 messages against one of 1 (canned upstream):
    as the platform runs (the long chat's path kept in memory after each answer), then with every
    history read from the database (as the first send after a restart, or on another replica)."""
    for label, env in (("path kept", {}), ("path read", {"AVOCADO_PLATFORM_KEPT_PATHS": "0"})):
        small, large, straight = _append(reps, env)
        ratio = statistics.median(large) / statistics.median(small)
        print(
            f"append ({label}): 1 message {ms(small)}; 5,000 messages {ms(large)}; "
            f"ratio p50 {ratio:.2f} (target <= 1.2)"
        )
        added = (statistics.median(small) - statistics.median(straight)) * 1000
        print(
            f"append ({label}): first token straight from the canned upstream {ms(straight)}: the "
            f"platform adds +{added:.2f} ms p50 (its share of the <= 5 ms time-to-first-token target, "
            "without a model)"
        )
    if openwebui:
        openwebui_anchor.append(reps)


def _append(reps: int, env: dict[str, str]) -> tuple[list[float], list[float], list[float]]:
    with processes() as started:
        canned = started.canned("--pace-ms", "0", "--chunks", "4")
        database = f"sqlite:///{started.work}/platform.sqlite3"
        platform, _ = started.platform(canned, database, **env)
        ((user_id, auth),) = sign_up(platform, 1)
        small: list[float] = []
        large: list[float] = []
        straight: list[float] = []
        with httpx.Client(base_url=platform, timeout=60) as http:
            big = create_chat(http, auth, CANNED)
            seed_path(database, user_id, big, 5000)
            for rep in range(reps + 5):
                little = create_chat(http, auth, CANNED)
                seed_path(database, user_id, little, 1)
                a = send_timed(http, auth, little, f"hello {rep}")[0]
                b = send_timed(http, auth, big, f"hello {rep}")[0]
                c = gateway_timed(http, canned, f"hello {rep}", {}, model=CANNED)[0]
                if rep >= 5:
                    small.append(a)
                    large.append(b)
                    straight.append(c)
    return small, large, straight


def seed_conversations(database: str, user_id: str, count: int) -> None:
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()), "user_id": user_id, "folder_id": None, "title": f"Chat number {n}",
            "title_source": "user", "model": CANNED, "system": None, "options": {}, "leaf_id": None,
            "summarise": False, "summary": None, "summary_depth": None,
            "message_count": 0, "pinned": n % 500 == 0, "archived": n % 10 == 9, "created_at": now,
            "updated_at": now - timedelta(seconds=n),
        }
        for n in range(count)
    ]  # fmt: skip
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(Conversation), rows[start : start + 5000])
    engine.dispose()


def timed_gets(url: str, auth: dict[str, str], path: str, params: list[dict[str, Any]]) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=60, headers=auth) as http:
        for query in params:
            started = time.perf_counter()
            response = http.get(path, params=query)
            times.append(time.perf_counter() - started)
            response.raise_for_status()
    return times


def part_sidebar(reps: int) -> None:
    """The first page of the sidebar with 10,000 conversations, on SQLite and PostgreSQL."""
    for backend in ("sqlite", "postgresql"):
        with processes() as started, postgres_database() if backend == "postgresql" else _nothing() as pg:
            database = pg or f"sqlite:///{started.work}/platform.sqlite3"
            canned = started.canned()
            platform, _ = started.platform(canned, database)
            ((user_id, auth),) = sign_up(platform, 1)
            seed_conversations(database, user_id, 10_000)
            if backend == "postgresql":
                # Statistics, as autovacuum makes them within a minute of such a load: without them the
                # planner guesses 3 rows for the user and sorts all 9,000 instead of reading the
                # index backwards (3 ms against 0.04 ms for the query)
                _analyze(database)
            timed_gets(platform, auth, "/api/v1/conversations", [{"limit": 50}] * 20)  # warm
            times = timed_gets(platform, auth, "/api/v1/conversations", [{"limit": 50}] * reps)
        print(
            f"sidebar ({backend}, 10,000 conversations, first page of 50): {ms(times)} (target p50 <= 20 ms)"
        )


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def corpus() -> list[str]:
    """Sentences of real prose: the project's own documentation."""
    text_ = " ".join(
        path.read_text(errors="ignore") for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
    )
    text_ = re.sub(r"[`#*|>\[\]()_]", " ", text_)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text_) if 20 < len(s.strip()) < 400]
    return sentences


def seed_messages(database: str, user_ids: list[str], per_user: int, sentences: list[str]) -> None:
    """``per_user`` messages for each user, in conversations of 100, with 1-4 sentences each.

    In bulk, ending in the state the app's own inserts leave: on PostgreSQL through ``COPY`` (the
    server computes the generated ``search_vector`` and updates every index as for an ``INSERT``);
    on SQLite, in one transaction, the rows go in without the per-row FTS trigger, then
    ``messages_fts`` gets them in one ``INSERT ... SELECT`` of exactly what that trigger writes
    (``owner``, ``body`` for every row not ``generating``), and the trigger is made again from its
    own stored SQL: 2.5 times faster at 200,000 messages than firing it row by row."""
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    rng = random.Random(7)
    now = datetime.now(UTC) - timedelta(days=30)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        trigger = ""
        if not postgres:
            stored = text("SELECT sql FROM sqlite_master WHERE name = 'messages_fts_insert'")
            trigger = connection.scalar(stored)
            first = connection.scalar(text("SELECT coalesce(max(rowid), 0) FROM messages"))
            connection.execute(text("DROP TRIGGER messages_fts_insert"))
        for user_id in user_ids:
            conversations: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            for c in range(per_user // 100):
                chat_id = str(uuid.uuid4())
                conversations.append({
                    "id": chat_id, "user_id": user_id, "folder_id": None, "title": rng.choice(sentences)[:60],
                    "title_source": "user", "model": CANNED, "system": None, "options": {}, "leaf_id": None,
            "summarise": False, "summary": None, "summary_depth": None,
                    "message_count": 100, "pinned": False, "archived": False, "created_at": now,
                    "updated_at": now,
                })  # fmt: skip
                parent = None
                for n in range(100):
                    mid = str(uuid.uuid4())
                    messages.append({
                        "id": mid, "conversation_id": chat_id, "user_id": user_id, "parent_id": parent,
                        "role": "user" if n % 2 == 0 else "assistant",
                        "content": " ".join(rng.choices(sentences, k=rng.randint(1, 4))), "model": None,
                        "depth": n, "tokens": 40, "usage": None, "status": "done", "error": None,
                        "done_reason": None, "context_depth": None, "stop_requested": False,
                        "created_at": now + timedelta(seconds=c * 100 + n), "updated_at": now,
                    })  # fmt: skip
                    parent = mid
                conversations[-1]["leaf_id"] = parent
            if postgres:
                _copy(connection, "conversations", conversations)
                _copy(connection, "messages", messages)
                continue
            connection.execute(insert(Conversation), conversations)
            for start in range(0, len(messages), 10_000):
                connection.execute(insert(Message), messages[start : start + 10_000])
        if not postgres:
            connection.execute(
                text(
                    f"INSERT INTO messages_fts(rowid, owner, body) SELECT rowid, {OWNER.format('user_id')},"
                    " content FROM messages WHERE rowid > :first AND status <> 'generating'"
                ),
                {"first": first},
            )
            connection.execute(text(trigger))
    engine.dispose()


def _copy(connection: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY of ``rows`` (what ``insert`` would write: JSON columns as JSON text, ``None``
    in them as JSON ``null``, as SQLAlchemy's JSON type stores it); the generated search vector and
    every index and constraint are made and checked by the server as for an insert."""
    columns = list(rows[0])
    as_json = {"options", "usage"}
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in as_json else row[c] for c in columns])


def queries(sentences: list[str], count: int) -> list[str]:
    """1-3 words, half from the most common words, half from the rarest."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for word in re.findall(r"[a-z]{4,}", sentence.lower()):
            counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: -counts[w])
    common, rare = ranked[:100], ranked[len(ranked) // 2 :]
    rng = random.Random(11)
    return [" ".join(rng.sample(common if n % 2 == 0 else rare, rng.randint(1, 3))) for n in range(count)]


def part_search(reps: int, total: int, users: int, openwebui: bool = True) -> None:
    """Search over ``total`` messages of ``users`` users (real prose), on SQLite and PostgreSQL."""
    sentences = corpus()
    asked = queries(sentences, reps)
    for backend in ("sqlite", "postgresql"):
        with processes() as started, postgres_database() if backend == "postgresql" else _nothing() as pg:
            database = pg or f"sqlite:///{started.work}/platform.sqlite3"
            platform, _ = started.platform(started.canned(), database)
            people = sign_up(platform, min(users, 5))
            upgrade(database)  # the platform made it; this only checks it is current
            others = [str(uuid.uuid4()) for _ in range(users - len(people))]
            _add_users(database, others)
            began = time.perf_counter()
            seed_messages(database, [p[0] for p in people] + others, total // users, sentences)
            if backend == "postgresql":
                _analyze(database)
            seeded = time.perf_counter() - began
            per_query = [{"q": q} for q in asked]
            timed_gets(platform, people[0][1], "/api/v1/search", per_query[:20])  # warm
            times: list[float] = []
            for n, query in enumerate(per_query):
                times += timed_gets(platform, people[n % len(people)][1], "/api/v1/search", [query])
            hits = httpx.get(f"{platform}/api/v1/search", params={"q": asked[1]}, headers=people[0][1]).json()
        print(
            f"search ({backend}, {total:,} messages of {users} users, seeded in {seeded:.0f} s): {ms(times)} "
            f"(targets p50 <= 50 ms, p99 <= 200 ms); e.g. {asked[1]!r}: {len(hits['items'])} hits on page 1"
        )
    if openwebui:
        openwebui_anchor.search(reps, total, users, sentences, asked)


def _add_users(database: str, ids: list[str]) -> None:
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, name, password_hash, role, status, created_at, updated_at)"
                " VALUES (:id, :email, 'x', NULL, 'user', 'active', :now, :now)"
            ),
            [{"id": i, "email": f"{i}@example.com", "now": now} for i in ids],
        )
    engine.dispose()


def _analyze(database: str) -> None:
    """What autovacuum does after a load of rows, now rather than during the measurement: statistics,
    the visibility map, and the GIN index's pending list merged into the index."""
    engine = create_engine(
        database.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as connection:
        connection.execute(text("VACUUM (ANALYZE)"))
    engine.dispose()


async def _lines(response: UpstreamResponse) -> AsyncIterator[str]:
    """An answer's body line by line as it arrives."""
    rest = b""
    while (chunk := await response.next_chunk()) is not None:
        *lines, rest = (rest + chunk).split(b"\n")
        for line in lines:
            yield line.decode()
    if rest:
        yield rest.decode()


async def _post(
    client: Upstream, url: str, path: str, body: dict[str, Any], auth: dict[str, str]
) -> UpstreamResponse:
    headers = [(b"content-type", b"application/json")]
    headers += [(name.lower().encode(), value.encode()) for name, value in auth.items()]
    return await client.request(url, b"POST", path.encode(), headers, json.dumps(body).encode())


async def _streams(
    url: str,
    auths: list[dict[str, str]],
    chats: list[str],
    writing: list[int] | None = None,
    lags: list[float] | None = None,
) -> tuple[list[list[float]], int]:
    """Every chat at once; per answer, when each canned piece arrived (seconds after sending).
    ``lags``: each stamped piece's delay from leaving the upstream to reaching this client. Read with
    the gateway's lean client (httptools), so the measuring side costs little next to what it measures."""
    failed = 0
    arrivals: list[list[float]] = []
    client = Upstream(max_idle=len(chats), first_byte_timeout=120, idle_timeout=120)

    async def one(n: int) -> None:
        nonlocal failed
        started, times, event = time.perf_counter(), [], ""
        path = f"/api/v1/conversations/{chats[n]}/messages"
        try:
            response = await _post(client, url, path, {"content": "hi"}, auths[n % len(auths)])
        except UpstreamError:
            failed += 1
            return
        try:
            async for line in _lines(response):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "delta":
                    # One arrival per canned piece ("t<k>[@<sent>] "): the platform may send several
                    # pieces in one event when its client reads late
                    at, now = time.perf_counter() - started, time.time()
                    pieces = json.loads(line[5:])["content"].split()
                    times.extend([at] * len(pieces))
                    if lags is not None:
                        lags.extend(now - float(p.partition("@")[2]) for p in pieces if "@" in p)
                    if writing is not None and len(times) - len(pieces) < WRITTEN <= len(times):
                        writing.append(n)  # this answer has been written for a while (flushed)
                elif line.startswith("data:") and event in ("done", "failed"):
                    ended = "failed" if event == "failed" else json.loads(line[5:])["status"]
                    if ended != "done":
                        failed += 1
                        return
                    break
            else:
                failed += 1  # cut off before its end
                return
            arrivals.append(times)
        except UpstreamError:
            failed += 1
        finally:
            response.close()

    await asyncio.gather(*(one(n) for n in range(len(chats))))
    await client.aclose()
    return arrivals, failed


async def _direct(canned: str, count: int, lags: list[float]) -> list[list[float]]:
    """The same chats straight to the upstream: when each piece arrived, and its delay in ``lags``."""
    body = {"model": CANNED, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    arrivals: list[list[float]] = []
    client = Upstream(max_idle=count, first_byte_timeout=120, idle_timeout=120)

    async def one() -> None:
        started, times = time.perf_counter(), []
        try:
            response = await _post(client, canned, "/api/chat", body, {})
            try:
                async for line in _lines(response):
                    piece = json.loads(line).get("message", {}).get("content") if line else None
                    if piece:
                        times.append(time.perf_counter() - started)
                        lags.append(time.time() - float(piece.split("@")[1]))
            finally:
                response.close()
        except UpstreamError as exc:
            print(f"streams: a request straight to the upstream failed: {exc}")
            return
        arrivals.append(times)

    await asyncio.gather(*(one() for _ in range(count)))
    await client.aclose()
    return arrivals


def part_streams(count: int) -> None:
    """``count`` concurrent streaming chats through one platform against a fast canned upstream."""
    with processes() as started:
        canned = started.canned("--pace-ms", "10", "--chunks", "20", "--stamp")
        platform, _ = started.platform(canned, f"sqlite:///{started.work}/platform.sqlite3")
        people = sign_up(platform, 8)
        with httpx.Client(base_url=platform, timeout=60) as http:
            chats = [create_chat(http, people[n % 8][1], CANNED) for n in range(count)]
        auths = [people[n % 8][1] for n in range(count)]
        straight: list[float] = []
        direct = asyncio.run(_direct(canned, count, straight))
        lags: list[float] = []
        through, failed = asyncio.run(_streams(platform, auths, chats, lags=lags))
    # Each piece carries the time it left the upstream: its delay to the client through the platform,
    # less the typical delay of a piece straight from the upstream, is what the platform added to it
    # (the send before the first piece is the time to first token, printed apart)
    base = statistics.median(straight)
    added = [lag - base for lag in lags]
    first_direct = statistics.median(t[0] for t in direct)
    first_through = [times[0] for times in through if times]
    print(
        f"streams: {count} concurrent chats, {failed} errors, {len(through)} complete; added delay per chunk "
        f"p50 {statistics.median(added) * 1000:.1f} ms, p99 {pct(added, 0.99) * 1000:.1f} ms "
        f"(target p99 <= 50 ms; straight from the upstream p50 {base * 1000:.1f}, "
        f"p99 {pct(straight, 0.99) * 1000:.1f} ms)"
    )
    ttft = statistics.median(first_through) * 1000
    print(
        f"streams: time to first token p50 {ttft:.0f} ms through the platform, {first_direct * 1000:.0f} ms "
        f"straight to the upstream, p99 {pct(first_through, 0.99) * 1000:.0f} ms"
    )


def part_replicas(count: int) -> None:
    """Two platforms on one PostgreSQL and Redis; one is killed mid-answer."""
    with processes() as started, postgres_database() as database:
        canned = started.canned("--pace-ms", "50", "--chunks", "60")  # 3 s answers
        shared = {"AVOCADO_REDIS_URL": REDIS}
        first, _ = started.platform(canned, database, **shared)
        second, victim = started.platform(canned, database, **shared)
        people = sign_up(first, 8)
        with httpx.Client(base_url=first, timeout=60) as http:
            chats = [create_chat(http, people[n % 8][1], CANNED) for n in range(count)]
        auths = [people[n % 8][1] for n in range(count)]
        half = count // 2

        async def run() -> tuple[tuple[list[list[float]], int], tuple[list[list[float]], int]]:
            writing: list[int] = []
            survivor = asyncio.create_task(_streams(first, auths[:half], chats[:half]))
            doomed = asyncio.create_task(_streams(second, auths[half:], chats[half:], writing))
            deadline = time.monotonic() + 60
            while len(writing) < half // 2 and time.monotonic() < deadline:  # noqa: ASYNC110 (mid-answer for many)
                await asyncio.sleep(0.05)
            victim.send_signal(signal.SIGKILL)
            return await survivor, await doomed

        (kept, kept_failed), (cut_short, doomed_failed) = asyncio.run(run())
        killed_at = time.monotonic()
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
        dead_chats = chats[half:]
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(Message.status, Message.content).where(
                        Message.conversation_id.in_(dead_chats), Message.role == "assistant"
                    )
                ).all()
            if all(status != "generating" for status, _ in rows) or time.monotonic() - killed_at > 120:
                break
            time.sleep(1)
        engine.dispose()
    interrupted = sum(1 for status, _ in rows if status == "interrupted")
    with_text = sum(1 for status, content in rows if status == "interrupted" and content)
    print(f"replicas: on the killed one {len(cut_short)} streams ended, {doomed_failed} broke (as they must)")
    print(
        f"replicas: survivor {len(kept)}/{half} answers complete ({kept_failed} failed); on the killed one "
        f"{interrupted}/{len(rows)} marked interrupted ({with_text} with text written before the kill), "
        f"{time.monotonic() - killed_at:.0f} s after the kill; still generating: "
        f"{sum(1 for status, _ in rows if status == 'generating')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, to see that it runs")
    parser.add_argument("--only", default="model,append,sidebar,search,streams,replicas")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages searched over")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=12, help="model: alternated pairs of requests")
    parser.add_argument("--node-threads", type=int, help="model: the node's threads (default: all cores)")
    parser.add_argument(
        "--no-openwebui", action="store_true", help="append and search: do not measure Open WebUI"
    )
    args = parser.parse_args()
    parts = set(args.only.split(","))
    quick = args.quick
    if "model" in parts:
        part_model(3 if quick else args.pairs, args.node_threads)
    if "append" in parts:
        part_append(10 if quick else 100, not args.no_openwebui)
    if "sidebar" in parts:
        part_sidebar(20 if quick else 200)
    if "search" in parts:
        part_search(
            20 if quick else 200,
            20_000 if quick else args.messages,
            10 if quick else args.users,
            not args.no_openwebui,
        )
    if "streams" in parts:
        part_streams(32 if quick else 256)
    if "replicas" in parts:
        part_replicas(16 if quick else 128)


if __name__ == "__main__":
    main()
