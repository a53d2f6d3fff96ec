"""Open WebUI as the anchor of bench/platform_chat.py's ``append`` and ``search`` parts (issue 19).

platform_chat.py calls :func:`append` and :func:`search` after measuring ours; each runs this file
again with the Python of Open WebUI's own virtualenv (``AVOCADO_BENCH_OPENWEBUI``, default
``bench/.openwebui-venv``; where it is missing the part says so and measures ours only):

    bench/.openwebui-venv/bin/python bench/openwebui_anchor.py append --reps 10
    bench/.openwebui-venv/bin/python bench/openwebui_anchor.py search --input queries.json

It starts ``bench/canned_upstream.py`` (answers at once) and ``open-webui serve`` on loopback with a
temporary ``DATA_DIR`` (its defaults: SQLite, one worker), ``OLLAMA_BASE_URL`` at the canned upstream
(model ``canned:latest``), ``WEBUI_AUTH`` on, and signs up its first user (the admin).

- append: what Open WebUI's web UI (0.12: ``Chat.svelte`` ``submitPrompt`` -> ``sendMessage`` ->
  ``sendMessageSocket``) does to send a message in a saved chat: one ``POST /api/chat/completions``
  with ``chat_id``, ``session_id`` (its socket.io connection), ``id`` / ``message_ids`` (the answer's
  id), ``parent_id``, ``user_message`` and ``messages`` (the whole path, as the UI sends it). The
  server appends the turn to the chat's JSON blob itself (``Chats.insert_chat_turn``) and streams
  the answer over socket.io (``events`` to the user's room); the UI posts no separate
  ``/api/v1/chats/{id}`` before it. Timed from the POST to the first socket event that carries the
  canned answer's first token; each send waits for the chat to go inactive before the next. The
  chats are created with ``POST /api/v1/chats/new`` (a history blob: ``chat.history.messages`` and
  ``chat.messages``, as the UI saves them) of 5,000 messages and of 1. Background tasks the UI
  would run after the answer (follow-up suggestions) are off, so they do not overlap the next send.
- search: the same messages as platform_chat's ``seed_messages`` (same sentences, same random
  sequence: users x messages, conversations of 100), put in through Open WebUI's own import route
  (``POST /api/v1/chats/import``, 10 conversations a request, one account per user; about 200
  messages a second here) or, above 50,000 messages (``--seed`` / ``AVOCADO_BENCH_OPENWEBUI_SEED``),
  the same ``chat`` rows written straight into its SQLite (its search there reads only ``chat.chat``),
  then ``GET /api/v1/chats/search?text=...`` with the same queries, the first five users in turn.
  Its search is per chat (60 a page): the chats whose title or messages hold the phrase, or every
  word somewhere (``LIKE '%word%'`` over the JSON), so its hit counts are not comparable to ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = Path(os.environ.get("AVOCADO_BENCH_OPENWEBUI", str(HERE / ".openwebui-venv")))
CANNED = "canned:latest"
PASSWORD = "correct horse battery"
WARM = int(os.environ.get("AVOCADO_BENCH_OPENWEBUI_WARM", "5"))


# -- called from platform_chat.py (the platform's virtualenv) ---------------------------------------


def missing() -> str | None:
    """Why Open WebUI cannot be measured here, or None."""
    if not (VENV / "bin" / "open-webui").exists():
        return (
            f"Open WebUI: not installed at {VENV} (set AVOCADO_BENCH_OPENWEBUI, or see "
            "bench/platform_accounts.py --openwebui install); skipped"
        )
    return None


def append(reps: int) -> None:
    """Open WebUI's append-and-first-token, 5,000 messages against 1, printed like ours."""
    _in_venv(["append", "--reps", str(reps)])


def search(reps: int, total: int, users: int, sentences: list[str], asked: list[str]) -> None:
    """Open WebUI's search over the same messages with the same queries, printed like ours."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"sentences": sentences, "queries": asked}, handle)
    try:
        _in_venv(["search", "--input", handle.name, "--messages", str(total), "--users", str(users)])
    finally:
        os.unlink(handle.name)
    del reps  # the queries carry the count


def _in_venv(arguments: list[str]) -> None:
    reason = missing()
    if reason:
        print(reason, flush=True)
        return
    command = [str(VENV / "bin" / "python"), str(Path(__file__).resolve()), *arguments]
    result = subprocess.run(command, check=False)
    if result.returncode:
        print(f"Open WebUI: {arguments[0]} failed (exit {result.returncode}); see above", flush=True)


# -- run inside Open WebUI's virtualenv --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.2f} ms, p99 {pct(values, 0.99) * 1000:.2f} ms"


class OpenWebUI:
    """A canned upstream and ``open-webui serve`` on a temporary DATA_DIR; both stopped at the end."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="avocado-bench-openwebui-"))
        self.started: list[subprocess.Popen[bytes]] = []
        self.url = ""
        self.admin: dict[str, Any] = {}

    def __enter__(self) -> OpenWebUI:
        try:
            port = free_port()
            canned = f"http://127.0.0.1:{port}"
            upstream = [sys.executable, str(HERE / "canned_upstream.py"), str(port), "--pace-ms", "0"]
            self._start([*upstream, "--chunks", "4"], {}, f"{canned}/api/tags", "canned.log")
            self._serve(canned)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.work, ignore_errors=True)

    def _start(self, command: list[str], env: dict[str, str], ready: str, log_name: str) -> None:
        log = open(self.work / log_name, "wb")  # noqa: SIM115
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
        self.started.append(process)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (self.work / log_name).read_text(errors="replace")[-2000:]
                raise SystemExit(f"{command[0]} exited:\n{tail}")
            try:
                if httpx.get(ready, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{command} did not come up in 300 s")

    def _serve(self, canned: str) -> None:
        data = self.work / "data"
        data.mkdir()
        port = free_port()
        env = {
            "DATA_DIR": str(data),
            "WEBUI_SECRET_KEY": secrets.token_hex(32),
            "WEBUI_AUTH": "true",
            "ENABLE_SIGNUP": "true",
            "ENABLE_OLLAMA_API": "true",
            "OLLAMA_BASE_URL": canned,
            "ENABLE_OPENAI_API": "false",
            "OFFLINE_MODE": "true",  # no model hub, no version check: this machine has no internet
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
            "RAG_RERANKING_MODEL_AUTO_UPDATE": "false",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "ANONYMIZED_TELEMETRY": "false",
            "SCARF_NO_ANALYTICS": "true",
            "DO_NOT_TRACK": "true",
            "GLOBAL_LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
        command = [str(VENV / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        self.url = f"http://127.0.0.1:{port}"
        self._start(command, env, f"{self.url}/health", "openwebui.log")
        body = {"email": "user0@example.com", "password": PASSWORD, "name": "U0"}
        response = httpx.post(f"{self.url}/api/v1/auths/signup", json=body, timeout=120)
        response.raise_for_status()
        self.admin = response.json()

    def add_user(self, n: int) -> dict[str, Any]:
        body = {"email": f"user{n}@example.com", "password": PASSWORD, "name": f"U{n}", "role": "user"}
        response = httpx.post(
            f"{self.url}/api/v1/auths/add", json=body, headers=auth(self.admin), timeout=120
        )
        response.raise_for_status()
        user: dict[str, Any] = response.json()
        return user

    def version(self) -> str:
        from importlib.metadata import version

        return version("open-webui")


def auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['token']}"}


# -- append ------------------------------------------------------------------------------------------


class Chat:
    """A saved chat as the UI holds it: the current message and the path sent as ``messages``."""

    def __init__(self, chat_id: str, current: str, path: list[dict[str, Any]]) -> None:
        self.id = chat_id
        self.current = current
        self.path = path


def history_blob(
    user: dict[str, Any], length: int, title: str
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """A chat body of ``length`` messages on one path (user and assistant in turn), as the UI saves it."""
    messages: dict[str, dict[str, Any]] = {}
    path: list[dict[str, Any]] = []
    parent: str | None = None
    now = int(time.time()) - 86_400
    for n in range(length):
        mid = str(uuid.uuid4())
        role = "user" if n % 2 == 0 else "assistant"
        message: dict[str, Any] = {
            "id": mid, "parentId": parent, "childrenIds": [], "role": role,
            "content": f"message {n}: " + "words " * 20, "timestamp": now + n,
        }  # fmt: skip
        if role == "user":
            message |= {"models": [CANNED], "user_id": user["id"], "user": {"id": user["id"], "name": "U0"}}
        else:
            message |= {"model": CANNED, "modelName": CANNED, "modelIdx": 0, "done": True}
        if parent:
            messages[parent]["childrenIds"].append(mid)
        messages[mid] = message
        path.append(
            {"id": mid, "role": role, "content": message["content"]}
            | ({"model": CANNED} if role == "assistant" else {})
        )
        parent = mid
    assert parent is not None
    chat = {
        "id": "", "title": title, "models": [CANNED], "params": {},
        "history": {"messages": messages, "currentId": parent},
        "messages": [{k: v for k, v in m.items()} for m in messages.values()],
        "tags": [], "timestamp": now * 1000,
    }  # fmt: skip
    return chat, parent, path


def create_chat(server: OpenWebUI, length: int) -> Chat:
    body, current, path = history_blob(server.admin, length, f"Chat of {length}")
    response = httpx.post(
        f"{server.url}/api/v1/chats/new", json={"chat": body}, headers=auth(server.admin), timeout=600
    )
    response.raise_for_status()
    return Chat(response.json()["id"], current, path)


class Socket:
    """The UI's socket.io connection: answers arrive as ``events`` for the user's room."""

    def __init__(self) -> None:
        import socketio  # type: ignore[import-not-found]  # Open WebUI's own (python-socketio)

        self.client = socketio.AsyncClient(reconnection=False)
        self.waiting: dict[str, dict[str, Any]] = {}
        self.client.on("events", self._event)

    async def connect(self, url: str, token: str) -> str:
        await self.client.connect(
            url, socketio_path="/ws/socket.io", auth={"token": token}, transports=["websocket"]
        )
        sid: str = self.client.get_sid(namespace="/")
        return sid

    async def _event(self, event: dict[str, Any]) -> None:
        wait = self.waiting.get(event.get("message_id") or "") or self.waiting.get(event.get("chat_id") or "")
        if not wait:
            return
        data = event.get("data") or {}
        kind = data.get("type")
        if os.environ.get("AVOCADO_BENCH_OPENWEBUI_TRACE"):
            print(f"{time.perf_counter():.4f} {kind} {json.dumps(data.get('data'))[:160]}", flush=True)
        if (
            kind in ("response:completion", "chat:completion")
            and not wait["first"].done()
            and "t0" in json.dumps(data.get("data"))
        ):
            wait["first"].set_result(time.perf_counter())
        inner = data.get("data") or {}
        if kind == "chat:active" and inner.get("active") is False and not wait["end"].done():
            wait["end"].set_result(time.perf_counter())
        if isinstance(inner, dict) and inner.get("error") and not wait["first"].done():
            wait["first"].set_exception(SystemExit(f"Open WebUI answered an error: {inner['error']}"))


async def send_timed(
    http: httpx.AsyncClient,
    sock: Socket,
    sid: str,
    server: OpenWebUI,
    model_item: dict[str, Any],
    chat: Chat,
    text: str,
) -> float:
    """Seconds from the POST to the answer's first token, as the UI sends a message in a saved chat."""
    user = server.admin
    user_id, answer_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_message = {
        "id": user_id, "parentId": chat.current, "childrenIds": [], "role": "user",
        "user": {"id": user["id"], "name": "U0"}, "user_id": user["id"], "content": text,
        "timestamp": int(time.time()), "models": [CANNED],
    }  # fmt: skip
    body = {
        "stream": True, "model": CANNED,
        "messages": [*chat.path, {"id": user_id, "role": "user", "content": text}],
        "params": {"model_controls": {}, "stop": None}, "tool_ids": [], "tool_servers": [],
        "features": {
            "voice": False, "image_generation": False, "code_interpreter": False, "web_search": False,
        },
        "variables": {}, "model_item": model_item, "session_id": sid, "chat_id": chat.id,
        "id": answer_id, "message_ids": [{"model_id": CANNED, "message_id": answer_id, "modelIdx": 0}],
        "parent_id": chat.current, "user_message": user_message,
        "background_tasks": {"follow_up_generation": False},
    }  # fmt: skip
    loop = asyncio.get_running_loop()
    wait = {"first": loop.create_future(), "end": loop.create_future()}
    sock.waiting[answer_id] = wait
    sock.waiting[chat.id] = wait
    started = time.perf_counter()
    response = await http.post("/api/chat/completions", json=body, headers=auth(user))
    if response.status_code != 200:
        raise SystemExit(
            f"Open WebUI: /api/chat/completions answered {response.status_code} {response.text[:300]}"
        )
    first = await asyncio.wait_for(wait["first"], 120)
    await asyncio.wait_for(wait["end"], 120)
    del sock.waiting[answer_id], sock.waiting[chat.id]
    chat.path += [
        {"id": user_id, "role": "user", "content": text},
        {"id": answer_id, "role": "assistant", "content": "t0 t1 t2 t3", "model": CANNED},
    ]
    chat.current = answer_id
    return float(first - started)


async def _append(server: OpenWebUI, reps: int) -> tuple[list[float], list[float]]:
    big = create_chat(server, 5000)
    sock = Socket()
    sid = await sock.connect(server.url, server.admin["token"])
    small: list[float] = []
    large: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            models = (await http.get("/api/models", headers=auth(server.admin))).json()["data"]
            model_item = next(m for m in models if m["id"] == CANNED)
            for rep in range(reps + WARM):
                little = create_chat(server, 1)
                a = await send_timed(http, sock, sid, server, model_item, little, f"hello {rep}")
                b = await send_timed(http, sock, sid, server, model_item, big, f"hello {rep}")
                if rep >= WARM:  # the first sends warm it up, as ours
                    small.append(a)
                    large.append(b)
    finally:
        await sock.client.disconnect()
    return small, large


def run_append(reps: int) -> None:
    with OpenWebUI() as server:
        version = server.version()
        small, large = asyncio.run(_append(server, reps))
    ratio = statistics.median(large) / statistics.median(small)
    print(
        f"append (Open WebUI {version}): 1 message {ms(small)}; 5,000 messages {ms(large)}; "
        f"ratio p50 {ratio:.2f}",
        flush=True,
    )


# -- search ------------------------------------------------------------------------------------------


def conversations(
    user: dict[str, Any], per_user: int, sentences: list[str], rng: random.Random, now: int
) -> list[dict[str, Any]]:
    """One user's conversations of 100 messages, drawn as platform_chat.seed_messages draws them."""
    chats: list[dict[str, Any]] = []
    for c in range(per_user // 100):
        title = rng.choice(sentences)[:60]
        messages: dict[str, dict[str, Any]] = {}
        parent: str | None = None
        for n in range(100):
            mid = str(uuid.uuid4())
            role = "user" if n % 2 == 0 else "assistant"
            content = " ".join(rng.choices(sentences, k=rng.randint(1, 4)))
            message: dict[str, Any] = {
                "id": mid, "parentId": parent, "childrenIds": [], "role": role, "content": content,
                "timestamp": now + c * 100 + n,
            }  # fmt: skip
            if role == "user":
                message |= {"models": [CANNED], "user_id": user["id"]}
            else:  # the import gives every message its user_id
                message |= {"model": CANNED, "done": True, "user_id": user["id"]}
            if parent:
                messages[parent]["childrenIds"].append(mid)
            messages[mid] = message
            parent = mid
        chat = {
            "title": title, "models": [CANNED], "history": {"messages": messages, "currentId": parent},
            "messages": list(messages.values()), "tags": [], "timestamp": now * 1000,
        }  # fmt: skip
        chats.append(
            {
                "chat": chat,
                "meta": {},
                "pinned": False,
                "archived": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    return chats


def seed(
    server: OpenWebUI, users: list[dict[str, Any]], per_user: int, sentences: list[str], how: str
) -> None:
    """Through Open WebUI's import route (``import``), or the rows it writes straight into ``chat``."""
    rng = random.Random(7)
    now = int(time.time()) - 30 * 86_400
    with httpx.Client(base_url=server.url, timeout=600) as http:
        for user in users:
            chats = conversations(user, per_user, sentences, rng, now)
            if how == "sqlite":
                _insert_chats(server.work / "data" / "webui.db", user["id"], chats)
                continue
            for start in range(0, len(chats), 10):
                response = http.post(
                    "/api/v1/chats/import", json={"chats": chats[start : start + 10]}, headers=auth(user)
                )
                response.raise_for_status()


def _insert_chats(database: Path, user_id: str, chats: list[dict[str, Any]]) -> None:
    """The ``chat`` rows ``Chats.import_chats`` would write (not its ``chat_message`` copies, which
    Open WebUI's SQLite search does not read: it looks in ``chat.chat``'s history and messages)."""
    rows = [
        (
            str(uuid.uuid4()), user_id, form["chat"]["title"], json.dumps(form["chat"]), form["created_at"],
            form["updated_at"], "{}", "{}", form["chat"]["history"]["currentId"], int(time.time()),
        )
        for form in chats
    ]  # fmt: skip
    with sqlite3.connect(database, timeout=60) as db:
        db.executemany(
            "INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta,"
            " variables, current_message_id, last_read_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)",
            rows,
        )


def run_search(input_path: str, total: int, users: int, how: str) -> None:
    given = json.loads(Path(input_path).read_text())
    sentences: list[str] = given["sentences"]
    asked: list[str] = given["queries"]
    with OpenWebUI() as server:
        version = server.version()
        people = [server.admin] + [server.add_user(n) for n in range(1, users)]
        began = time.perf_counter()
        how = how if how != "auto" else ("import" if total <= 50_000 else "sqlite")
        seed(server, people, total // users, sentences, how)
        seeded = time.perf_counter() - began
        askers = people[: min(users, 5)]
        times: list[float] = []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for query in asked[:20]:  # warm
                http.get("/api/v1/chats/search", params={"text": query}, headers=auth(askers[0]))
            for n, query in enumerate(asked):
                started = time.perf_counter()
                response = http.get(
                    "/api/v1/chats/search", params={"text": query}, headers=auth(askers[n % len(askers)])
                )
                times.append(time.perf_counter() - started)
                response.raise_for_status()
            hits = http.get("/api/v1/chats/search", params={"text": asked[1]}, headers=auth(askers[0])).json()
    print(
        f"search (Open WebUI {version}, its SQLite, {total:,} messages of {users} users, seeded "
        f"{'through /api/v1/chats/import' if how == 'import' else 'into its chat table'} in {seeded:.0f} s): "
        f"{ms(times)}; "
        f"e.g. {asked[1]!r}: {len(hits)} chats on page 1",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["append", "search"])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--input", help="search: JSON with the sentences and the queries")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--seed",
        choices=["auto", "import", "sqlite"],
        default=os.environ.get("AVOCADO_BENCH_OPENWEBUI_SEED", "auto"),
        help="search: through /api/v1/chats/import or straight into its chat table (auto: import to 50,000)",
    )
    args = parser.parse_args()
    if args.part == "append":
        run_append(args.reps)
    else:
        run_search(args.input, args.messages, args.users, args.seed)


if __name__ == "__main__":
    main()
