#!/usr/bin/env python3
"""Idle keep-alive test for benches/load/run.sh (python3, stdlib only).

  idle.py SERVER PORT PID N [HOLD_S]

Opens N connections to 127.0.0.1:PORT with a non-blocking selectors loop, sends
one GET /index.html on each and reads the whole answer (so each is a real,
served keep-alive connection, not a half-open one), then holds them all idle.
Reports the server's RSS growth per held connection (VmRSS of PID and its
descendants), how many are still open after HOLD_S seconds, and whether a fresh
request on a new connection is still served, and how fast. Prints one
results.jsonl row. Bounded: gives up connecting after 60 s, or 10 s without
progress.
"""
import json
import selectors
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ inside the repo from the import below
from report import HOST, get_status, rss_kib

IN_FLIGHT = 256      # connects under way at once: stays far below the listen backlog
SETUP_MAX_S = 60
STALL_S = 10


class Conn:
    def __init__(self, sock):
        self.sock, self.buf, self.need = sock, b"", None


def parse_head(c):
    """Set c.need (bytes of head + body) once the head is in; False if not a 200."""
    head, _, _ = c.buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    c.need = len(head) + 4 + length
    return head.split(b" ", 2)[1:2] == [b"200"]


def open_idle(port, n):
    """Open n served keep-alive connections; returns (idle sockets, failure counts)."""
    req = f"GET /index.html HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle, failed, started = [], {"connect": 0, "closed": 0, "non200": 0}, 0
    t0 = last = time.monotonic()

    def done(c, why=None):
        sel.unregister(c.sock)
        if why:
            failed[why] += 1
            c.sock.close()
        else:
            idle.append(c.sock)

    while started < n or sel.get_map():
        while started < n and len(sel.get_map()) < IN_FLIGHT:
            s = socket.socket()
            s.setblocking(False)
            started += 1
            if s.connect_ex((HOST, port)) not in (0, 115):  # 115: EINPROGRESS
                failed["connect"] += 1
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE, Conn(s))
        now = time.monotonic()
        if now - t0 > SETUP_MAX_S or now - last > STALL_S:
            break
        for key, events in sel.select(timeout=0.2):
            c = key.data
            try:
                if events & selectors.EVENT_WRITE:  # connected (or failed to)
                    if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        done(c, "connect")
                        continue
                    c.sock.send(req)  # 60 bytes: always fits the send buffer
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(65536)
            except OSError:
                done(c, "closed")
                continue
            if not data:
                done(c, "closed")
                continue
            c.buf += data
            if c.need is None and b"\r\n\r\n" in c.buf and not parse_head(c):
                done(c, "non200")
            elif c.need is not None and len(c.buf) >= c.need:
                done(c, None)
                last = time.monotonic()
    failed["stuck"] = len(sel.get_map())  # never answered within the bounds
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return idle, failed


def still_open(socks):
    """Sockets the server has not closed: a closed one turns readable (EOF/RST)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    readable = {key.fileobj for key, _ in sel.select(timeout=0)}
    sel.close()
    return sum(1 for s in socks if s not in readable)


def fresh_request(port):
    """(ok, ms of the first fresh GET, best ms of two more): is it still served?"""
    times, ok = [], True
    for _ in range(3):
        t = time.monotonic()
        try:
            ok = ok and get_status(port, timeout=5.0) == 200
        except OSError:
            ok = False
        times.append(round((time.monotonic() - t) * 1000, 2))
    return ok, times[0], min(times[1:])


def main(server, port, pid, n, hold="2"):
    port, n, hold = int(port), int(n), float(hold)
    get_status(port)  # warm up: the first request's lazily allocated state is not per-connection
    rss0 = rss_kib(pid)
    t = time.monotonic()
    idle, failed = open_idle(port, n)
    setup_s = time.monotonic() - t
    time.sleep(hold)  # let the server settle (and show whether it drops idle connections)
    rss1 = rss_kib(pid)
    alive = still_open(idle)
    ok, fresh_ms, next_ms = fresh_request(port)
    for s in idle:
        s.close()
    failed = {k: v for k, v in failed.items() if v}
    row = {"server": server, "workload": "idle", "connections": n, "opened": len(idle),
           "open_after_hold": alive, "hold_s": hold, "setup_s": round(setup_s, 2),
           "rss_before_kib": rss0, "rss_after_kib": rss1,
           "kib_per_idle_conn": round((rss1 - rss0) / alive, 2) if alive else None,
           "fresh_ok": ok, "fresh_ms": fresh_ms, "fresh_next_ms": next_ms,
           "requests": len(idle) + 3, "req_per_s": None, "p50_ms": None, "p99_ms": None,
           "mb_per_s": None, "server_cpu_us_per_req": None,
           # every connection that was not opened, served and kept counts, and a failed fresh request
           "errors": sum(failed.values()) + (len(idle) - alive) + (0 if ok else 1),
           "non2xx": failed.get("non200", 0), "error_detail": failed}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
