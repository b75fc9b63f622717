#!/usr/bin/env python3
"""A TCP delay line on loopback: a wide-area link for the benchmark.

Every byte that crosses the proxy arrives DELAY later than it was sent,
in each direction, in order, and the link is never idle while data waits:
reading from one side goes on while earlier bytes are still "in flight",
so throughput is not limited to one buffer per round trip (a delay line,
not a stop-and-wait relay).  This is what a long path does to a TCP
connection once its window is open, and what `tc netem delay` would do,
for machines that have no netem.

A real connection also costs a round trip before the client can send
anything (SYN, SYN-ACK).  The kernel completes the client's connect()
to the proxy at once, so the proxy charges that round trip to the
first bytes instead: the upstream connection is opened 3 x DELAY after
the client connected (when the server would see the handshake's final
ACK), and nothing from the client reaches the server before then.  A
TLS ClientHello sent at t=0 therefore reaches the server at 3 x DELAY,
and its reply the client at 4 x DELAY, as on a real path.  End of stream
(FIN) is delayed like data; a reset closes both sides at once.

Library:

    px = DelayProxy(target_port, delay=0.025)   # 50 ms round trip
    px.start()                                   # serves on a thread
    ... connect to 127.0.0.1:px.port ...
    px.stats()   # {"connections", "max_open", "open", "bytes_up",
                 #  "bytes_down"}
    px.stop()

Command line (the benchmark runs it as its own process so that its CPU
is measured apart):

    delayproxy.py --target-port PORT [--delay-ms 25] [--port 0]
                  [--ready-file F] [--stats-file F]

prints the port it listens on, serves until SIGTERM or SIGINT, then
writes its counters as JSON to --stats-file.  Loopback only.
"""

import argparse
import asyncio
import collections
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time

CHUNK = 65536
# Bytes read but not yet delivered, per direction of a connection, before
# the proxy stops reading that side (TCP flow control then pushes back on
# the sender).  4 MiB in flight per 25 ms is 160 MB/s per connection.
MAX_IN_FLIGHT = 4 << 20


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Line:
    """One direction of one connection: (due time, bytes or None for
    EOF) in arrival order, with the bytes held counted for flow
    control."""

    def __init__(self):
        self.items = collections.deque()
        self.held = 0
        self.more = asyncio.Event()      # an item was added
        self.room = asyncio.Event()      # held went below the bound
        self.room.set()

    def put(self, due, data):
        self.items.append((due, data))
        if data:
            self.held += len(data)
            if self.held >= MAX_IN_FLIGHT:
                self.room.clear()
        self.more.set()

    async def get(self):
        while not self.items:
            self.more.clear()
            await self.more.wait()
        return self.items.popleft()

    def done(self, n):
        self.held -= n
        if self.held < MAX_IN_FLIGHT:
            self.room.set()


class DelayProxy:
    def __init__(self, target_port, delay=0.025, target_host="127.0.0.1",
                 listen_host="127.0.0.1", port=0):
        if not (_loopback(target_host) and _loopback(listen_host)):
            raise ValueError("delayproxy only works on loopback")
        self.target = (target_host, target_port)
        self.delay = float(delay)
        self.listen_host = listen_host
        self.port = port
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.errors = 0
        self._server = None
        self._loop = None
        self._thread = None
        self._ready = threading.Event()
        self._stop = None

    def stats(self):
        return {"connections": self.connections, "open": self.open,
                "max_open": self.max_open, "bytes_up": self.bytes_up,
                "bytes_down": self.bytes_down, "errors": self.errors,
                "delay_ms": self.delay * 1000}

    # ---- one connection

    async def _pump_in(self, reader, line, not_before, up):
        """Read one side into the line, stamping each chunk with the time
        it is due on the other side."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await line.room.wait()
                data = await reader.read(CHUNK)
                now = loop.time()
                due = max(now + self.delay, not_before)
                if not data:
                    line.put(due, None)
                    return
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                line.put(due, data)
        except (ConnectionError, OSError):
            line.put(loop.time(), b"")  # reset: deliver at once
            raise

    async def _pump_out(self, line, writer):
        """Deliver the line's bytes to the other side when due."""
        loop = asyncio.get_running_loop()
        while True:
            due, data = await line.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                return
            if data == b"":
                raise ConnectionResetError("peer reset")
            writer.write(data)
            await writer.drain()
            line.done(len(data))

    async def _handle(self, creader, cwriter):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        up, down = _Line(), _Line()
        opened = t0 + 3 * self.delay
        tasks = []
        swriter = None
        try:
            tasks.append(asyncio.ensure_future(
                self._pump_in(creader, up, opened, True)))
            await asyncio.sleep(max(0.0, opened - loop.time()))
            sreader, swriter = await asyncio.open_connection(*self.target)
            tasks += [
                asyncio.ensure_future(self._pump_out(up, swriter)),
                asyncio.ensure_future(self._pump_in(sreader, down, 0, False)),
                asyncio.ensure_future(self._pump_out(down, cwriter)),
            ]
            # Done when both directions have delivered their EOF, or at
            # the first error in any of them.
            pending = set(tasks)
            outs = {tasks[1], tasks[3]}
            while outs & pending:
                done, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() for t in done
                       if not t.cancelled()):
                    break
        except (ConnectionError, OSError):
            self.errors += 1
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except BaseException:
                    pass
            for w in (cwriter, swriter):
                if w is not None:
                    w.close()
            self.open -= 1

    # ---- serving

    async def serve(self, ready=None):
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, self.listen_host, self.port, backlog=4096,
            reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        if ready:
            ready(self.port)
        async with self._server:
            await self._stop.wait()
        self._server.close()

    def request_stop(self):
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def start(self):
        def main():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(
                self.serve(ready=lambda p: self._ready.set()))
            self._loop.close()
        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("delayproxy did not start")
        return self

    def stop(self):
        self.request_stop()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--delay-ms", type=float, default=25.0,
                    help="one-way delay (default 25: a 50 ms round trip)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    ap.add_argument("--stats-file")
    a = ap.parse_args(argv)
    px = DelayProxy(a.target_port, a.delay_ms / 1000.0,
                    target_host=a.target_host, port=a.port)

    def ready(port):
        print(port, flush=True)
        if a.ready_file:
            tmp = a.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.rename(tmp, a.ready_file)

    async def run():
        loop = asyncio.get_running_loop()
        px._loop = loop
        server = asyncio.ensure_future(px.serve(ready=ready))
        while px._stop is None:
            await asyncio.sleep(0.01)
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, px._stop.set)
        await server

    asyncio.run(run())
    if a.stats_file:
        with open(a.stats_file, "w") as f:
            json.dump(px.stats(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
