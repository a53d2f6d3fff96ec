"""Tunnel test support: a stand-in node, a real sshd on loopback, a stand-in cloudflared."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
BODY = "Ollama is running"

# ``cloudflared tunnel --url URL`` as far as the tunnel can tell: logs like cloudflared (to stderr),
# prints a quick tunnel URL in a box, then keeps running. STANDIN_MODE changes what it does.
CLOUDFLARED = """#!{python}
import json, os, signal, sys, time
from pathlib import Path

here = Path(__file__).resolve().parent
(here / "argv.json").write_text(json.dumps(sys.argv[1:]))
mode = os.environ.get("STANDIN_MODE", "ok")
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def log(level, message):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(stamp, level, message, file=sys.stderr, flush=True)


log("INF", "Thank you for trying Cloudflare Tunnel. See https://developers.cloudflare.com/cloudflare-one/")
log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
if mode == "fail":
    log("ERR", 'failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": no network')
    sys.exit(1)
if mode == "flood":  # more output than a pipe holds, before the URL
    for i in range(20000):
        print(f"INF chatter line {{i}} " + "x" * 80, flush=False)
    sys.stdout.flush()
if mode != "silent":
    log("INF", "+" + "-" * 60 + "+")
    log("INF", "|  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):")
    log("INF", "|  https://sample-words-for-tests.trycloudflare.com                                        |")
    log("INF", "+" + "-" * 60 + "+")
while True:
    time.sleep(1)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for its parent to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def until(predicate: Callable[[], bool], within: float = 8.0, what: str = "the condition") -> None:
    """Wait until ``predicate()`` holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def cloudflared_standin(directory: Path) -> Path:
    """A directory holding an executable ``cloudflared`` stand-in (put it first on PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_executable(directory / "cloudflared", CLOUDFLARED.format(python=sys.executable))
    return directory


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODY.encode()
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class LocalNode:
    """A stand-in for the node: ``GET /`` answers 200 "Ollama is running"."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_local_node() -> LocalNode:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return LocalNode(server, thread)


@dataclass
class Sshd:
    """A real OpenSSH server on loopback, with its own host key, user key and config."""

    directory: Path
    port: int
    user: str
    identity: Path
    process: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")

    def banner(self, text: str) -> None:
        """What a session prints before it waits (as localhost.run prints its URL)."""
        (self.directory / "banner.txt").write_text(text)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "avocado-tests", "-f", str(path)], check=True
    )


def start_sshd(directory: Path) -> Sshd:
    """Start ``sshd -D -e`` on a free loopback port; skip the test when OpenSSH is not installed."""
    if not os.access(SSHD, os.X_OK):
        pytest.skip(f"the ssh tunnel tests need an OpenSSH server at {SSHD} (apt-get install openssh-server)")
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"the ssh tunnel tests need the OpenSSH client ({tool} is not on PATH)")
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "user_key")
    shutil.copy(directory / "user_key.pub", directory / "authorized_keys")
    session = write_executable(
        directory / "session.sh",
        f'#!/bin/sh\ncat "{directory}/banner.txt" 2>/dev/null\nexec cat >/dev/null\n',
    )
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {directory / 'host_key'}",
                f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                f"PidFile {directory / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding yes",
                "GatewayPorts no",
                f"ForceCommand {session}",
                "",
            ]
        )
    )
    with contextlib.suppress(OSError):
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    with (directory / "sshd.log").open("wb") as log:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sshd = Sshd(directory, port, getpass.getuser(), directory / "user_key", process)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with status {process.returncode}: {sshd.log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sshd
        except OSError:
            if time.monotonic() > deadline:
                sshd.stop()
                pytest.fail(f"sshd did not listen on port {port}: {sshd.log}")
            time.sleep(0.05)
