#!/usr/bin/env python3
"""slow_readers.py PORT N RATE SECS -- N clients downloading /big.png, each taking RATE bytes/s, for SECS.

One process and one thread, waking 20 times a second: slow readers that cost the load generator's core next
to nothing (eight `curl --limit-rate` processes wake far more often, and the latency wrk measures beside
them is then partly its own). A finished download starts over on a new connection."""
import socket
import sys
import time

FILE_LEN = 10 * 1024 * 1024
STEP = 0.05


def start(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big.png HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return [s, 0]


def main(port, n, rate, secs):
    conns = [start(port) for _ in range(n)]
    per_step = int(rate * STEP)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        began = time.monotonic()
        for c in conns:
            got, data = 0, b"x"
            # Never ask past the end of the file: the server then waits for the next request, and a recv for
            # more would wait forever. (The head's bytes count too, so the last few hundred go unread.)
            while got < per_step and c[1] + got < FILE_LEN:
                data = c[0].recv(min(65536, per_step - got, FILE_LEN - c[1] - got))
                if not data:
                    break
                got += len(data)
            c[1] += got
            if not data or c[1] >= FILE_LEN:
                c[0].close()
                c[:] = start(port)
        time.sleep(max(0.0, STEP - (time.monotonic() - began)))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
