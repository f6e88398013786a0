"""A TCP hop with latency: ``python latency.py LISTEN_IP:PORT UPSTREAM_IP:PORT MILLISECONDS`` (stdlib only).

Every byte from a client reaches the upstream ``MILLISECONDS`` later (order kept; the way back is not
delayed). The lab puts it in front of pebble's ACME API: the real CA is an internet away, and lego
depends on that. It asks for the authorization's state the moment it has posted the challenge; when
pebble's own validation (its DNS query to the lab's knot) is a millisecond behind that question, lego
waits its 5 s default before asking again, twice per order at worst. A few milliseconds of distance
give pebble's validation the head start every real CA has.
"""

from __future__ import annotations

import asyncio
import sys


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            release, data = await queue.get()
            wait = release - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    task = asyncio.create_task(pump())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
    except OSError:
        queue.put_nowait((0.0, b""))
    await task


async def _serve(listen: str, upstream: str, delay: float) -> None:
    listen_host, listen_port = listen.rsplit(":", 1)
    upstream_host, upstream_port = upstream.rsplit(":", 1)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _forward(client_reader, upstream_writer, delay), _forward(upstream_reader, client_writer, 0.0)
            )
        except OSError:
            pass
        finally:
            upstream_writer.close()
            client_writer.close()

    server = await asyncio.start_server(handle, listen_host, int(listen_port))
    print(f"forwarding {listen} -> {upstream} with {delay * 1000:g} ms", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000))
