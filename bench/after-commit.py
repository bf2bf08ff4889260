#!/usr/bin/env python3
"""Where a long-poll's latency after the commit goes, from a capture of one
`herald-bench longpoll-personal` run against herald on 127.0.0.1:8090 with its database
connections in the clear (BENCHMARKS.md, "Where herald's part after the commit goes"):

    tcpdump -i lo -s 0 -w lp.pcap 'tcp port 5432 or tcp port 8090' &
    TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' \\
      bench/ab 1 H H longpoll-personal --n 200 --rate 20 --duration-secs 15
    bench/after-commit.py lp.pcap

For each INSERT of the writers it takes the next commit reply, the next NOTIFY reaching a
listener, that listener's next query and its result, and the next HTTP answer holding a
notification; rows whose steps span more than 40 ms (another row's in between) are left
out. At a low rate the steps of one row do not overlap the next's."""
import struct
import sys

PG, HERALD = 5432, 8090


def packets(path):
    """(time, source port, destination port, TCP payload) of each IPv4 packet with data."""
    with open(path, "rb") as f:
        magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", f.read(24))
        scale = 1e9 if magic == 0xA1B23C4D else 1e6
        skip = {1: 14, 113: 16}.get(link, 4)  # Ethernet (lo), Linux cooked
        while len(header := f.read(16)) == 16:
            seconds, fraction, length, _ = struct.unpack("<IIII", header)
            ip = f.read(length)[skip:]
            if len(ip) < 20 or ip[0] >> 4 != 4:
                continue
            tcp = ip[(ip[0] & 15) * 4 :]
            payload = tcp[(tcp[12] >> 4) * 4 :]
            if payload:
                yield (seconds + fraction / scale, *struct.unpack(">HH", tcp[:4]), payload)


def main(path):
    pk = list(packets(path))
    inserts = [(t, s) for t, s, d, p in pk if d == PG and b"insert into notifications" in p]
    writers = {s for _, s in inserts}
    # NotificationResponse ('A') on channel herald: its destination is a listener.
    notifies = [(t, d) for t, s, d, p in pk if s == PG and p[:1] == b"A" and b"herald" in p]
    listeners = {d for _, d in notifies}
    commits = [t for t, s, d, p in pk if s == PG and d in writers and b"INSERT 0 1" in p]
    queries = [(t, s) for t, s, d, p in pk if d == PG and s in listeners]
    results = [(t, d) for t, s, d, p in pk if s == PG and d in listeners and p[:1] != b"A"]
    answers = [t for t, s, d, p in pk
               if s == HERALD and p.startswith(b"HTTP/1.1 200") and b'"notifications":[{' in p]

    def after(events, t, port=None):
        for event in events:
            at, on = event if isinstance(event, tuple) else (event, None)
            if at >= t and (port is None or on == port):
                return at
        return None

    steps = []
    for t0, _ in inserts:
        commit = after(commits, t0)
        notify = next(((t, port) for t, port in notifies if t >= t0), None)
        if commit is None or notify is None:
            continue
        query = after(queries, notify[0], notify[1])
        result = query and after(results, query, notify[1])
        answer = result and after(answers, result)
        if answer is None or answer - t0 > 0.04:
            continue
        steps.append((notify[0] - commit, query - notify[0], result - query, answer - result,
                      answer - commit))
    print(f"rows {len(steps)} of {len(inserts)}")
    names = ["commit reply -> NOTIFY at the listener", "NOTIFY -> the listener's query",
             "query -> result", "result -> HTTP answer", "commit reply -> HTTP answer"]
    for i, name in enumerate(names):
        v = sorted(s[i] * 1e3 for s in steps)
        pick = lambda q: v[min(len(v) - 1, int(len(v) * q))]
        print(f"{name:40} p50 {pick(.5):.3f}  p90 {pick(.9):.3f}  p99 {pick(.99):.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1])
