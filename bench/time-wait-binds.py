#!/usr/bin/env python3
"""How long a client socket takes to get its source port once TIME_WAIT holds many.

    python3 bench/time-wait-binds.py 50000    # then again with 5000, 5000: see BENCHMARKS.md
    python3 bench/time-wait-binds.py 56000 --leave-only   # then a herald-bench run

Leaves N client-side TIME_WAIT sockets on 127.0.0.2-5 (each bound to port 0 before it
connects, as herald-bench's clients were), then times 5,000 more clients from the same
addresses, held open as one 5,000-client run holds them: first with a plain bind to port 0,
then with IP_BIND_ADDRESS_NO_PORT, the port left for connect to choose. A TIME_WAIT socket
lasts 60 s: run it again within that to add to the ones before. With --leave-only it only
leaves the N sockets, for a herald-bench run to meet them.
"""
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; Python's socket module does not name it
SOURCES = ["127.0.0.%d" % (2 + i) for i in range(4)]


def main():
    n = int(sys.argv[1])
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    dst = server.getsockname()
    started = time.time()
    for i in range(n):
        client = socket.socket()
        client.bind((SOURCES[i % 4], 0))
        client.connect(dst)
        accepted, _ = server.accept()
        client.close()  # the client closes first: the TIME_WAIT is the client's
        accepted.close()
    print(f"left {n} sockets in TIME_WAIT in {time.time() - started:.1f} s")
    if "--leave-only" in sys.argv[2:]:
        return
    for no_port in (False, True):
        held, took = [], []
        for i in range(5000):
            client = socket.socket()
            t = time.perf_counter()
            if no_port:
                client.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            client.bind((SOURCES[i % 4], 0))
            if no_port:
                client.connect(dst)
            took.append(time.perf_counter() - t)
            held.append(client)
            if no_port:
                server.accept()[0].close()
        took.sort()
        how = "IP_BIND_ADDRESS_NO_PORT, bind + connect" if no_port else "plain bind to port 0"
        print(f"{how}: 5,000 in {sum(took):.2f} s, p50 {took[2500] * 1e6:.0f} µs, "
              f"p99 {took[4950] * 1e6:.0f} µs, max {took[-1] * 1e6:.0f} µs")
        for client in held:
            client.close()


if __name__ == "__main__":
    main()
