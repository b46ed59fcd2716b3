#!/usr/bin/env python3
"""A slow link in front of the benchmark's registry: a throttling, delaying TCP proxy.

    python bench/slowlink.py --upstream 127.0.0.1:5000 [--listen 127.0.0.1:0]
        [--rate BYTES_PER_S] [--connect-delay S] [--rtt S]

Every connection accepted on ``--listen`` gets its own connection to ``--upstream`` and
its own link, so the rules hold *per TCP connection*, as on a link whose proxy or shaper
caps each connection (a client that opens more connections gets more bandwidth, as it
would there):

* ``--connect-delay``: the upstream connection is opened, and the first byte forwarded,
  that long after the client connected (the handshake of a distant server);
* ``--rtt``: every byte is delivered half the round trip after it was read, in each
  direction, so each request and its answer cost one round trip (and TLS handshakes their
  real number of them); up to ``WINDOW`` bytes per direction may be in flight, like a TCP
  window (on a 150 ms link that still allows ~200 MB/s);
* ``--rate``: a token bucket per connection and direction, refilled at that many bytes
  per second, starting with one ``CHUNK`` (64 KiB) and holding at most two (so that a
  late wake-up of the event loop is made up for, not lost), so nothing arrives faster than
  the rate, not even at the start, and the long-run rate is the rate.

TLS passes through untouched (the proxy never sees plain text). Prints ``listening
HOST:PORT`` when ready, then ``open N`` and ``close N up=BYTES down=BYTES SECONDS`` per
connection (the benchmark counts the ``open`` lines). Standard library only; stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import socket
import sys
from collections.abc import Sequence

CHUNK = 64 * 1024
BURST = 2 * CHUNK
WINDOW = 16 * 1024 * 1024


class TokenBucket:
    """``rate`` bytes per second, at most ``BURST`` saved up; ``rate <= 0``: unlimited."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = float(CHUNK)
        self.stamp = asyncio.get_running_loop().time()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            self.tokens = min(float(BURST), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


class Direction:
    """One direction of one connection: read, pay the bucket, deliver after the delay."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rate: float,
        one_way: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.bucket = TokenBucket(rate)
        self.one_way = one_way
        self.bytes = 0

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.bytes += len(data)

    async def run(self) -> None:
        if self.one_way <= 0:
            while data := await self.reader.read(CHUNK):
                await self.bucket.take(len(data))
                await self._send(data)
        else:
            await self._run_delayed()
        if self.writer.can_write_eof():
            self.writer.write_eof()  # half-close: the other side still may answer

    async def _run_delayed(self) -> None:
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=WINDOW // CHUNK)

        async def deliver() -> None:
            while True:
                due, data = await line.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    return
                await self._send(data)

        delivery = asyncio.create_task(deliver())
        try:
            while data := await self.reader.read(CHUNK):
                await self.bucket.take(len(data))
                await line.put((loop.time() + self.one_way, data))
            await line.put((loop.time() + self.one_way, b""))  # the EOF travels too
            await delivery
        finally:
            delivery.cancel()


class Link:
    def __init__(self, upstream: tuple[str, int], rate: float, connect_delay: float, rtt: float):
        self.upstream = upstream
        self.rate = rate
        self.connect_delay = connect_delay
        self.one_way = rtt / 2
        self.ids = itertools.count(1)

    async def handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        cid = next(self.ids)
        loop = asyncio.get_running_loop()
        started = loop.time()
        print(f"open {cid}", flush=True)
        u_writer: asyncio.StreamWriter | None = None
        up: Direction | None = None
        down: Direction | None = None
        try:
            if self.connect_delay > 0:
                await asyncio.sleep(self.connect_delay)
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
            for w in (c_writer, u_writer):
                sock = w.get_extra_info("socket")
                if sock is not None:  # small requests must not wait for Nagle
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up = Direction(c_reader, u_writer, self.rate, self.one_way)
            down = Direction(u_reader, c_writer, self.rate, self.one_way)
            tasks = [asyncio.create_task(up.run()), asyncio.create_task(down.run())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:  # one side failed (reset): the connection is over
                task.cancel()
            for task in done:
                if (exc := task.exception()) is not None:
                    print(f"reset {cid} {type(exc).__name__}: {exc}", flush=True)
        except (OSError, asyncio.IncompleteReadError) as exc:
            print(f"error {cid} {type(exc).__name__}: {exc}", flush=True)
        finally:
            c_writer.close()
            if u_writer is not None:
                u_writer.close()
            print(
                f"close {cid} up={up.bytes if up else 0} down={down.bytes if down else 0} "
                f"{loop.time() - started:.3f}s",
                flush=True,
            )


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(args: argparse.Namespace) -> None:
    link = Link(_host_port(args.upstream), args.rate, args.connect_delay, args.rtt)
    host, port = _host_port(args.listen)
    server = await asyncio.start_server(link.handle, host, port, backlog=256)
    bound = server.sockets[0].getsockname()
    print(f"listening {bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A throttling, delaying TCP proxy.")
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument("--rate", type=float, default=0.0, help="bytes/s per connection")
    parser.add_argument("--connect-delay", type=float, default=0.0, help="seconds per connect")
    parser.add_argument("--rtt", type=float, default=0.0, help="round trip in seconds")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
