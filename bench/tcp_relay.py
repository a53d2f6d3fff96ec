"""The least a proxy can do: copy bytes both ways between a client and an upstream, on asyncio.

    .venv/bin/python bench/tcp_relay.py LISTEN_PORT UPSTREAM_PORT

No HTTP at all, one connection upstream per client connection. ``bench/gateway.py`` puts it in
front of the canned upstream to show what any extra hop through a Python process costs on this
machine (mostly waking a process up for each streamed chunk), so that the gateway's added delay can
be read against that floor.
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve(listen: int, upstream: int) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
