#!/usr/bin/env python3
"""Opens a new TCP connection to IP:PORT every INTERVAL_MS for SECONDS and reports how it went, as JSON.

Used by the failover tests and hack/bench/failover: the client side of "new connections succeed again". Every
attempt runs in its own thread with a 1 s connect timeout, so a hung SYN does not delay the next attempt.
`errors` counts failures by kind (timeout, ECONNREFUSED, ...). `max_gap_ms` is the longest time between the starts of two consecutive successful attempts (a failover gap is
measured to within one interval); `failures` counts attempts that did not connect; `failure_window_ms` runs from
the first failed attempt's start to the first success after the last failure.

usage: connect-probe.py IP PORT SECONDS [INTERVAL_MS] [--start-file PATH] [--stop-file PATH]
--start-file: touch PATH once the first connection succeeded (lets a caller act only when traffic flows).
--stop-file: end one second after PATH appears (SECONDS is then the longest run), for events of unknown length.
"""
import errno
import json
import os
import socket
import sys
import threading
import time


errors = {}


def attempt(ip, port, results, index):
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    start = time.monotonic()
    ok = False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect((ip, port))
            ok = True
    except socket.timeout:
        errors[index] = "timeout"
    except OSError as e:
        errors[index] = errno.errorcode.get(e.errno, str(e.errno))
    results[index] = (start, ok)


def main():
    args = [a for a in sys.argv[1:]]
    start_file = None
    if "--start-file" in args:
        i = args.index("--start-file")
        start_file = args[i + 1]
        del args[i : i + 2]
    stop_file = None
    if "--stop-file" in args:
        i = args.index("--stop-file")
        stop_file = args[i + 1]
        del args[i : i + 2]
    ip, port, seconds = args[0], int(args[1]), float(args[2])
    interval = (float(args[3]) if len(args) > 3 else 10.0) / 1000.0
    results = {}
    threads = []
    begin = time.monotonic()
    index = 0
    signalled = False
    end = begin + seconds
    while time.monotonic() < end:
        if stop_file and end == begin + seconds and os.path.exists(stop_file):
            end = min(end, time.monotonic() + 1.0)
        t = threading.Thread(target=attempt, args=(ip, port, results, index), daemon=True)
        t.start()
        threads.append(t)
        index += 1
        if start_file and not signalled and any(ok for _, ok in list(results.values())):
            open(start_file, "w").close()
            signalled = True
        time.sleep(max(0.0, begin + index * interval - time.monotonic()))
    for t in threads:
        t.join()
    ordered = [results[i] for i in sorted(results)]
    successes = [start for start, ok in ordered if ok]
    gaps = [b - a for a, b in zip(successes, successes[1:])]
    # The outage as the client saw it: from the start of the first failed attempt to the start of the first
    # success after the last failure (attempts in flight when a node dies fail too, so this can exceed the gap).
    failed = [start for start, ok in ordered if not ok]
    window = None
    if failed:
        after = [start for start in successes if start > failed[-1]]
        window = round(((after[0] if after else ordered[-1][0]) - failed[0]) * 1000.0, 1)
    # Attempts in the last second tell whether the service came back.
    tail = [ok for start, ok in ordered if start >= end - 1.0]
    print(
        json.dumps(
            {
                "attempts": len(ordered),
                "failures": sum(1 for _, ok in ordered if not ok),
                "max_gap_ms": round(max(gaps) * 1000.0, 1) if gaps else None,
                "failure_window_ms": window,
                "last_second_ok": all(tail) and bool(tail),
                "first_ok_ms": round((successes[0] - begin) * 1000.0, 1) if successes else None,
                # Why attempts failed, and when (ms after the start), for the first ten.
                "errors": {k: list(errors.values()).count(k) for k in sorted(set(errors.values()))},
                "failed_at_ms": [round((results[i][0] - begin) * 1000.0, 1) for i in sorted(errors)[:10]],
            }
        )
    )


if __name__ == "__main__":
    main()
