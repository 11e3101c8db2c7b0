#!/usr/bin/env python3
"""A TCP relay that adds round-trip time: each chunk read is held RTT/2 before it is sent on.

    python3 bench/delay.py --listen 127.0.0.1:7420 --to 10.77.0.2:7412 --rtt 80

Stands in for netem's delay where the kernel has none. Delay is added per direction on
every connection, pipelined (a chunk waits only for its own deadline), so it models
propagation delay, not a slower link; a bound on bytes in flight per direction (8 MiB, a
generous TCP window) keeps memory small. Prints "ready" once it listens.
"""

import argparse
import asyncio
import time

CHUNK = 64 * 1024
IN_FLIGHT = 8 << 20


async def pipe(reader, writer, delay):
    """Copies reader to writer, each chunk sent `delay` seconds after it was read."""
    queue = asyncio.Queue()
    room = asyncio.Semaphore(IN_FLIGHT // CHUNK)

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
            room.release()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            await room.acquire()
            data = await reader.read(CHUNK)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except ConnectionError:
        pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    ap.add_argument("--to", required=True, help="HOST:PORT to relay to")
    ap.add_argument("--rtt", type=float, required=True, help="added round-trip time, ms")
    args = ap.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    thost, tport = args.to.rsplit(":", 1)
    half = args.rtt / 2000

    async def serve(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pipe(creader, uwriter, half), pipe(ureader, cwriter, half))
        cwriter.close()
        uwriter.close()

    server = await asyncio.start_server(serve, lhost, int(lport))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
