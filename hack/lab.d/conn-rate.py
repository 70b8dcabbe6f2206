#!/usr/bin/env python3
"""New-connection rate against a lab pod's HTTP server, as JSON: how many connect + GET + close cycles
PROCESSES x THREADS workers complete against IP:PORT in SECONDS.

Used by hack/bench/dataplane. Each worker loops: open a TCP connection (1 s timeout), send one small
HTTP/1.0 GET, read the answer to EOF (the pod's server closes after answering), close. Several processes, so
the client is not held to one core by the GIL; threads in each, so a connection waiting on the network does
not idle a core. `conns_per_s` counts completed cycles whose answer was the pod's (`pod=...`); `errors` counts
cycles that failed, and `error_kinds` says how ("connect" or "answer", then errno name or "timeout"; or
"bad answer").

usage: conn-rate.py IP PORT [SECONDS] [THREADS] [PROCESSES]     (defaults 5, 8, 2)
THREADS is the total concurrency, split over PROCESSES.
"""
import errno
import json
import multiprocessing
import socket
import sys
import threading
import time


def worker(ip, port, deadline, counts, index):
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    host = f"[{ip}]" if ":" in ip else ip
    request = f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    ok = 0
    errors = {}
    while time.monotonic() < deadline:
        stage = "connect"
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect((ip, port))
                stage = "answer"
                s.sendall(request)
                answer = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            if b"\r\n\r\npod=" in answer:
                ok += 1
            else:
                errors["bad answer"] = errors.get("bad answer", 0) + 1
        except OSError as e:
            kind = stage + " " + ("timeout" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e)))
            errors[kind] = errors.get(kind, 0) + 1
    counts[index] = (ok, errors)


def process(ip, port, start, seconds, threads, queue):
    deadline = start + seconds
    counts = [(0, {})] * threads
    pool = [threading.Thread(target=worker, args=(ip, port, deadline, counts, i)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    errors = {}
    for _, e in counts:
        for kind, n in e.items():
            errors[kind] = errors.get(kind, 0) + n
    queue.put((sum(c[0] for c in counts), errors))


def main():
    ip, port = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    processes = max(1, min(int(sys.argv[5]) if len(sys.argv) > 5 else 2, threads))
    queue = multiprocessing.Queue()
    # CLOCK_MONOTONIC is system-wide, so every process shares the same deadline.
    start = time.monotonic()
    share = [threads // processes + (1 if i < threads % processes else 0) for i in range(processes)]
    procs = [multiprocessing.Process(target=process, args=(ip, port, start, seconds, n, queue)) for n in share]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    ok = sum(r[0] for r in results)
    errors = {}
    for _, e in results:
        for kind, n in e.items():
            errors[kind] = errors.get(kind, 0) + n
    print(
        json.dumps(
            {
                "conns": ok,
                "errors": sum(errors.values()),
                "error_kinds": errors,
                "seconds": round(elapsed, 3),
                "conns_per_s": round(ok / elapsed, 1),
                "threads": threads,
                "processes": processes,
            }
        )
    )


if __name__ == "__main__":
    main()
