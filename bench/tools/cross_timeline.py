#!/usr/bin/env python3
"""Where the two-instance scenario's time goes, leg by leg, from a loopback packet capture.

Runs `switchyard-bench compare --cross-only --servers KIND` under `tcpdump -i lo` (kernel
timestamps: nothing runs inside the servers, unlike `perf trace`), maps each server's Redis
connections with `ss`, then follows every publication:

  request reaches A -> A's command to Redis -> Redis's message reaches B -> B's deliveries

and, for the same load on one instance without Redis, request -> deliveries. Prints the p50 and
p90 of each leg. Needs root (tcpdump), `ss`, and a release build of the bench.

    python3 bench/tools/cross_timeline.py switchyard   # or: node
"""
import bisect
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

# A request or Redis message of the scenario carries 100 user names: larger than anything else.
LARGE = 1000
REDIS = 6379
NTH = 50  # the median subscriber of 100


def capture(kind, out):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "128", "-w", f"{out}/cap.pcap", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    sockets, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            sockets.append(subprocess.run(["ss", "-tanpH"], capture_output=True, text=True).stdout)
            stop.wait(2)

    poller = threading.Thread(target=poll)
    poller.start()
    bench = subprocess.run([f"{root}/target/release/switchyard-bench", "compare", "--cross-only", "--servers", kind],
                           capture_output=True, text=True, cwd=root)
    stop.set()
    poller.join()
    time.sleep(0.5)
    dump.terminate()
    dump.wait()
    return bench.stdout, bench.stderr, "".join(sockets)


def redis_ports(sockets, listen_port):
    """The local ports of the Redis connections of the process listening on `listen_port`."""
    pid = None
    for line in sockets.splitlines():
        if line.startswith("LISTEN") and re.search(rf":{listen_port}\s", line):
            m = re.search(r"pid=(\d+)", line)
            pid = m and m.group(1)
    ports = set()
    for line in sockets.splitlines():
        parts = line.split()
        if pid and len(parts) > 4 and parts[4].endswith(f":{REDIS}") and f"pid={pid}," in line:
            ports.add(int(parts[3].rsplit(":", 1)[1]))
    return ports


def packets(pcap):
    text = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-n", "-q"], capture_output=True, text=True).stdout
    out = []
    for line in text.splitlines():
        m = re.match(r"(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+): tcp (\d+)", line)
        if m and int(m.group(4)) > 0:
            out.append((float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out


def after(times, t):
    i = bisect.bisect_right(times, t)
    return i if i < len(times) else None


def show(name, xs):
    xs = sorted(xs)
    if xs:
        print(f"| {name} | {xs[len(xs) // 2] * 1e6:.0f} | {xs[int(len(xs) * 0.9)] * 1e6:.0f} | {len(xs)} |")


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "switchyard"
    out = tempfile.mkdtemp(prefix="cross-timeline-")
    stdout, stderr, sockets = capture(kind, out)
    m = re.search(r"alone on [\d.]+:(\d+); two instances on [\d.]+:(\d+) and [\d.]+:(\d+)", stderr)
    if not m:
        sys.exit(f"the bench did not say where its servers were:\n{stderr}")
    alone, a, b = map(int, m.groups())
    pk = packets(f"{out}/cap.pcap")
    a_redis, b_redis = redis_ports(sockets, a), redis_ports(sockets, b)

    # One instance alone: request -> its first and NTH-th delivery.
    requests = [p[0] for p in pk if p[2] == alone and p[3] > LARGE]
    writes = [p[0] for p in pk if p[1] == alone and p[3] < LARGE]
    first, nth = [], []
    for t0 in requests:
        i = after(writes, t0)
        if i is not None and i + NTH <= len(writes):
            first.append(writes[i] - t0)
            nth.append(writes[i + NTH - 1] - t0)

    # The pair.
    requests = [p[0] for p in pk if p[2] == a and p[3] > LARGE]
    commands = [p[0] for p in pk if p[1] in a_redis and p[2] == REDIS and p[3] > LARGE]
    messages = [p[0] for p in pk if p[1] == REDIS and p[2] in b_redis and p[3] > LARGE]
    deliveries = [p[0] for p in pk if p[1] == b and p[3] < LARGE]
    legs = [[], [], [], [], []]
    for t0 in requests:
        i = after(commands, t0)
        j = None if i is None else after(messages, commands[i])
        k = None if j is None else after(deliveries, messages[j])
        if k is None or k + NTH > len(deliveries):
            continue
        t1, t2 = commands[i], messages[j]
        t3, t4 = deliveries[k], deliveries[k + NTH - 1]
        for leg, value in zip(legs, (t1 - t0, t2 - t1, t3 - t2, t4 - t2, t4 - t0)):
            leg.append(value)

    print(f"{kind}: capture in {out}\n")
    print("| leg | p50 µs | p90 µs | publications |\n|---|---:|---:|---:|")
    show("alone: request → first delivery", first)
    show(f"alone: request → {NTH}th delivery", nth)
    show("pair: request reaches A → A's command to Redis", legs[0])
    show("pair: A's command → Redis's message reaches B", legs[1])
    show("pair: message at B → B's first delivery", legs[2])
    show(f"pair: message at B → B's {NTH}th delivery", legs[3])
    show(f"pair: request → {NTH}th delivery", legs[4])
    print("\n" + "\n".join(line for line in stdout.splitlines() if "two instances" in line))


if __name__ == "__main__":
    main()
