#!/usr/bin/env python3
"""HTTP probes for bench/multisite.sh, run as a process of their own.

  probe.py reload --port P --host H --marker M --touch FILE [--threads 4]
      Loads http://127.0.0.1:P/ (Host: H) from THREADS threads, one request
      per connection; after a second touches FILE (a vassal config) and
      keeps going until an answer contains MARKER (the new code), then one
      second more. Prints: reload_ms stall_ms failed, where reload_ms is
      touch to first new answer, stall_ms the longest time without any
      successful answer from one second before the touch to the end, and
      failed the answers that were not 200 or did not come.

  probe.py coldstart --port P --hosts H1,H2,... --log FILE -- CMD ARGS...
      Starts CMD in a new session (output to FILE), polls every host
      through the router until each has answered 200 once, then sends
      SIGINT to the server and waits for it to exit (SIGKILL to its
      process group after 20 s). Prints: start_ms stop_ms.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def get(port, host, timeout):
    """One request on a new connection; returns (status, body) or (None, b"")."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError:
        return None, b""
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return None, b""


def reload(args):
    marker = args.marker.encode()
    lock = threading.Lock()
    done = []  # (monotonic time of the answer, ok, new code)
    stop = threading.Event()

    def load():
        while not stop.is_set():
            status, body = get(args.port, args.host, 10)
            with lock:
                done.append((time.monotonic(), status == 200, marker in body))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(args.threads)]
    for t in threads:
        t.start()
    time.sleep(1)
    touched = time.monotonic()
    os.utime(args.touch)
    deadline = touched + args.timeout
    first_new = None
    while first_new is None and time.monotonic() < deadline:
        time.sleep(0.005)
        with lock:
            first_new = next((t for t, ok, new in done if ok and new and t >= touched), None)
    if first_new is None:
        stop.set()
        sys.exit(f"probe.py: {args.host} did not answer with the new code within {args.timeout} s")
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(12)
    window = sorted(t for t, ok, _ in done if ok and t >= touched - 1)
    last, stall = touched - 1, 0.0
    for t in window:
        stall, last = max(stall, t - last), t
    failed = sum(1 for t, ok, _ in done if not ok and t >= touched - 1)
    print(f"{(first_new - touched) * 1e3:.0f} {stall * 1e3:.0f} {failed}")


def coldstart(args):
    hosts = [h for h in args.hosts.split(",") if h]
    with open(args.log, "wb") as log:
        start = time.monotonic()
        server = subprocess.Popen(args.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  start_new_session=True)
    pending = set(hosts)
    deadline = start + args.timeout
    try:
        while pending:
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"probe.py: still waiting for {sorted(pending)} (see {args.log})")
            for host in sorted(pending):
                if get(args.port, host, 2)[0] == 200:
                    pending.discard(host)
            if pending:
                time.sleep(0.05)
        ready = time.monotonic()
        stopping = time.monotonic()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
            stopped = time.monotonic()
        except subprocess.TimeoutExpired:
            stopped = float("nan")
        print(f"{(ready - start) * 1e3:.0f} {(stopped - stopping) * 1e3:.0f}")
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("reload")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--marker", required=True)
    p.add_argument("--touch", required=True)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("coldstart")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hosts", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("cmd", nargs="+")
    args = parser.parse_args()
    {"reload": reload, "coldstart": coldstart}[args.what](args)


if __name__ == "__main__":
    main()
