#!/usr/bin/env python3
"""A TCP proxy on loopback that can cut connections, delay them and record
what passes.

As a library:

    with CutProxy(target_port, cut_after=100_000) as px:
        ...connect to 127.0.0.1:px.port...
    px.cuts            # connections cut so far
    px.transcripts     # [(client->server bytes, server->client bytes)]

cut_after=N: once N bytes have gone from the server to the client on a
connection, both sides of it are closed (FIN, or RST with rst=True).
max_cuts limits how many connections are cut (None: every one); later
connections pass untouched.  first_byte_delay=S holds the first bytes
from the server (the greeting) for S seconds, so a client that polls
many mailboxes one after another is visibly slower than one that polls
them together.  record=True keeps every byte in both directions.

Concurrency is counted, not timed: `active` is the number of connections
open right now and `max_active` the most that were ever open at once.  A
connection stops counting as soon as the client has closed its end (its
FIN or RST has reached the proxy's socket), even if the proxy has not got
round to noticing yet, so a client that closes one connection and then
opens the next is never counted twice.  hold_until=N holds the first bytes
from the server on every connection until N connections are open at once
(then the gate stays open), or until hold_timeout seconds after the first
connection: a client that really opens N sessions together reaches N
whatever the machine's speed, and one that does not is seen to stay below.

Command line:
    cutproxy.py --target-port PORT [--port P] [--cut-after N] [--rst]
                [--max-cuts N] [--first-byte-delay S] [--hold-until N]
                [--hold-timeout S]
prints "listening on 127.0.0.1:P" and runs until SIGINT or SIGTERM, then
the connection counts.
Only loopback addresses are accepted.
"""

import argparse
import ipaddress
import select
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 65536

# Linux TCP states (include/net/tcp_states.h), first byte of TCP_INFO.
_TCP_ESTABLISHED = 1


def _readable(socks, timeout):
    """The sockets of socks with something to read (or EOF, or an error),
    waiting up to timeout seconds.  poll(), so descriptors above 1023
    work."""
    p = select.poll()
    by_fd = {}
    for so in socks:
        by_fd[so.fileno()] = so
        p.register(so, select.POLLIN | select.POLLERR | select.POLLHUP)
    return [by_fd[fd] for fd, _ in p.poll(timeout * 1000)]


def _client_open(sock):
    """Whether the peer of sock has not closed its end yet."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return info[0] == _TCP_ESTABLISHED


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class CutProxy:
    def __init__(self, target_port, target_host="127.0.0.1",
                 cut_after=None, rst=False, max_cuts=None,
                 first_byte_delay=0.0, record=False, hold_until=None,
                 hold_timeout=20.0, listen_host="127.0.0.1", port=0,
                 start=True):
        if not (_loopback(target_host) and _loopback(listen_host)):
            raise ValueError("cutproxy only works on loopback")
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.rst = rst
        self.max_cuts = max_cuts
        self.first_byte_delay = first_byte_delay
        self.record = record
        self.hold_until = hold_until
        self.hold_timeout = hold_timeout
        self.connections = 0
        self.cuts = 0
        self.max_active = 0
        self.hold_timed_out = False  # the gate opened by its time limit
        self.transcripts = []
        self._clients = set()  # client sockets the proxy has not closed
        self._gate = threading.Event()
        self._gate_deadline = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = []
        self._socks = set()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((listen_host, port))
        self._lsock.listen(1024)
        self.host = listen_host
        self.port = self._lsock.getsockname()[1]
        self._acceptor = None
        if start:
            self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "CutProxy(%d -> %d)" % (self.port, self.target[1])

    @property
    def active(self):
        """Connections open right now (see the module's description)."""
        with self._lock:
            return sum(1 for c in self._clients if _client_open(c))

    def start(self):
        self._acceptor = threading.Thread(target=self._accept_loop,
                                          daemon=True)
        self._acceptor.start()

    def stop(self, timeout=10):
        """Stop accepting, close every open connection, join the threads."""
        self._stopping.set()
        self._gate.set()
        try:
            self._lsock.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        for t in list(self._threads):
            t.join(timeout)

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                if not _readable([self._lsock], 0.2):
                    continue
                client, _ = self._lsock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                # Counted at accept: the only moment the number can grow.
                now = 1 + sum(1 for c in self._clients if _client_open(c))
                self._clients.add(client)
                self.max_active = max(self.max_active, now)
                if self._gate_deadline is None:
                    self._gate_deadline = (time.monotonic()
                                           + self.hold_timeout)
                if self.hold_until is None or now >= self.hold_until:
                    self._gate.set()
                cut = self.cut_after is not None and (
                    self.max_cuts is None or self.cuts < self.max_cuts)
                if cut:
                    self.cuts += 1  # reserved; undone if never reached
            t = threading.Thread(target=self._serve, args=(client, cut),
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _close(self, s, rst=False):
        try:
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            else:
                s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass
        with self._lock:
            self._socks.discard(s)
            self._clients.discard(s)

    def _serve(self, client, cut):
        c2s, s2c = bytearray(), bytearray()
        try:
            server = socket.create_connection(self.target, timeout=10)
        except OSError:
            self._close(client)
            if cut:
                with self._lock:
                    self.cuts -= 1
            return
        server.settimeout(None)
        with self._lock:
            self._socks.update((client, server))
        budget = self.cut_after if cut else None
        delay_until = time.monotonic() + self.first_byte_delay
        first = True
        did_cut = False
        try:
            while not self._stopping.is_set():
                r = _readable([client, server], 0.5)
                if client in r:
                    data = client.recv(CHUNK)
                    if not data:
                        server.shutdown(socket.SHUT_WR)
                        # keep forwarding the server's remaining reply
                        client_done = True
                    else:
                        client_done = False
                        server.sendall(data)
                        if self.record:
                            c2s += data
                    if client_done:
                        self._drain(server, client, budget, s2c)
                        break
                if server in r:
                    data = server.recv(CHUNK)
                    if not data:
                        break
                    if first:
                        first = False
                        self._hold()
                        wait = delay_until - time.monotonic()
                        if wait > 0:
                            time.sleep(wait)
                    if budget is not None and len(data) >= budget:
                        client.sendall(data[:budget])
                        if self.record:
                            s2c += data[:budget]
                        did_cut = True
                        break
                    client.sendall(data)
                    if self.record:
                        s2c += data
                    if budget is not None:
                        budget -= len(data)
        except OSError:
            pass
        finally:
            if cut and not did_cut:
                with self._lock:
                    self.cuts -= 1
            self._close(client, rst=did_cut and self.rst)
            self._close(server, rst=did_cut and self.rst)
            if self.record:
                with self._lock:
                    self.transcripts.append((bytes(c2s), bytes(s2c)))

    def _hold(self):
        """Wait at the gate of hold_until (no-op once it is open)."""
        if self._gate.is_set():
            return
        with self._lock:
            left = self._gate_deadline - time.monotonic()
        if not self._gate.wait(max(0.0, left)):
            with self._lock:
                if not self._gate.is_set():
                    self.hold_timed_out = True
                    self._gate.set()

    def _drain(self, server, client, budget, s2c):
        server.settimeout(5)
        try:
            while True:
                data = server.recv(CHUNK)
                if not data:
                    return
                if budget is not None:
                    data = data[:budget]
                    budget -= len(data)
                client.sendall(data)
                if self.record:
                    s2c += data
                if budget == 0:
                    return
        except OSError:
            return

    def client_bytes(self):
        """Everything clients sent, all connections joined."""
        with self._lock:
            return b"".join(t[0] for t in self.transcripts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cut-after", type=int)
    ap.add_argument("--rst", action="store_true")
    ap.add_argument("--max-cuts", type=int)
    ap.add_argument("--first-byte-delay", type=float, default=0.0)
    ap.add_argument("--hold-until", type=int)
    ap.add_argument("--hold-timeout", type=float, default=20.0)
    a = ap.parse_args(argv)
    px = CutProxy(a.target_port, a.target_host, cut_after=a.cut_after,
                  rst=a.rst, max_cuts=a.max_cuts,
                  first_byte_delay=a.first_byte_delay,
                  hold_until=a.hold_until, hold_timeout=a.hold_timeout,
                  port=a.port)
    print("listening on %s:%d" % (px.host, px.port), flush=True)
    done = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    px.stop()
    print("%d connections, %d cut, at most %d at once"
          % (px.connections, px.cuts, px.max_active))
    return 0


if __name__ == "__main__":
    sys.exit(main())
