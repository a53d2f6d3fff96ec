"""``python -m avocado.tunnel.ngrok_agent --forward URL``: one ngrok endpoint, as a child of the node.

Reads the auth token from ``NGROK_AUTHTOKEN``, connects with the ngrok SDK and prints
``avocado-ngrok: forwarding <public URL> -> <URL>`` once the endpoint is up, then stays up until
SIGTERM or SIGINT, or until its standard input (a pipe held by the node) ends because the node is
gone. It prints a line, then exits with status 1, when it cannot connect; the SDK reconnects by
itself after a connection drops. It leaves through ``os._exit``, so that the interpreter never
finalizes under the SDK's threads (see :mod:`avocado.tunnel.ngrok`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from avocado.tunnel.ngrok import READY_PREFIX

if TYPE_CHECKING:
    import ngrok

__all__ = ["main"]

CLOSE_TIMEOUT = 5.0
_PREFIX = "avocado-ngrok: "


def _say(message: str, token: str = "") -> None:
    if token:
        message = message.replace(token, "***")
    print(f"{_PREFIX}{message}", flush=True)


def _describe(exc: BaseException) -> str:
    """The SDK raises ``ValueError('failed to connect session', 'failed to establish tcp connection')``."""
    parts = [str(arg) for arg in exc.args if str(arg)]
    return ": ".join(parts) or type(exc).__name__


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m avocado.tunnel.ngrok_agent")
    parser.add_argument("--forward", required=True, help="the URL traffic goes to")
    parser.add_argument("--domain", help="a fixed domain reserved in the ngrok dashboard")
    parser.add_argument("--server-addr", help="the ngrok service to connect to (host:port)")
    return parser.parse_args(argv)


def _watch_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` when standard input, a pipe from the node, ends: the node has gone."""
    if not stat.S_ISFIFO(os.fstat(0).st_mode):
        return
    loop = asyncio.get_running_loop()

    def wait() -> None:
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, name="stdin-watch", daemon=True).start()


async def _connect(args: argparse.Namespace, token: str) -> tuple[ngrok.Session, ngrok.Listener]:
    """The ngrok session and its HTTP endpoint forwarding to ``args.forward``."""
    import ngrok  # here, not at the top: only the helper process loads the SDK

    from avocado import __version__

    builder = ngrok.SessionBuilder().authtoken(token).client_info("avocado", __version__)
    if args.server_addr:
        builder = builder.server_addr(args.server_addr)
    session = await builder.connect()
    endpoint = session.http_endpoint()
    if args.domain:
        endpoint = endpoint.domain(args.domain)
    return session, await endpoint.listen_and_forward(args.forward)


async def _serve(args: argparse.Namespace, token: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _watch_stdin(stop)
    connecting = asyncio.create_task(_connect(args, token))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        _say("stopped before ngrok answered")
        return 0
    try:
        session, listener = connecting.result()
    except Exception as exc:
        _say(f"cannot connect to ngrok: {_describe(exc)}", token)
        return 1
    print(f"{READY_PREFIX} {listener.url()} -> {args.forward}", flush=True)
    await stopping
    _say("closing")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(listener.close(), CLOSE_TIMEOUT)
        await asyncio.wait_for(session.close(), CLOSE_TIMEOUT)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = _arguments(argv)
    token = os.environ.get("NGROK_AUTHTOKEN", "").strip()
    if not token:
        _say("no auth token: set NGROK_AUTHTOKEN")
        code = 2
    else:
        code = asyncio.run(_serve(args, token))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
