"""Client side of bench/emperor.sh: polls vassals until they serve, and
drives a reload under load. Standard library only; prints one line of
numbers per command for the shell script to collect."""

import http.client
import os
import sys
import threading
import time


def get(port, timeout=2.0):
    """Body of GET / on 127.0.0.1:port, or None on any failure."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return body.decode() if r.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None


def wait_all(start, ports, deadline):
    """Seconds from `start` (a time.time()) until every port serves. One
    thread per port, each blocking on its own request, so a vassal that
    has bound its socket but not loaded its app yet delays only itself."""
    done = {}

    def poll(port):
        while time.time() < deadline:
            if get(port, timeout=max(0.1, deadline - time.time())) is not None:
                done[port] = time.time()
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=poll, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(done) < len(ports):
        print("timeout:", len(ports) - len(done), "not serving", file=sys.stderr)
        sys.exit(1)
    return max(done.values()) - start


def reload_under_load(port, app, ini, version, source):
    """Two clients loop requests; the app is replaced and its vassal file
    touched. Prints: seconds until the new code served, the longest
    request (ms), failed requests, total requests."""
    stop = threading.Event()
    stats = {"max": 0.0, "fail": 0, "n": 0}
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            t = time.time()
            body = get(port, timeout=30)
            dt = time.time() - t
            with lock:
                stats["n"] += 1
                stats["max"] = max(stats["max"], dt)
                if body is None:
                    stats["fail"] += 1

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with open(app, "w") as f:
        f.write(source)
    t0 = time.time()
    os.utime(ini)
    while get(port, timeout=30) != version:
        if time.time() - t0 > 60:
            break
        time.sleep(0.005)
    took = time.time() - t0
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    print(f"{took:.3f} {stats['max'] * 1000:.1f} {stats['fail']} {stats['n']}")


def main():
    cmd = sys.argv[1]
    if cmd == "wait":
        start, timeout = float(sys.argv[2]), float(sys.argv[3])
        ports = [int(p) for p in sys.argv[4:]]
        print(f"{wait_all(start, ports, time.time() + timeout):.3f}")
    elif cmd == "reload":
        port, app, ini, version, source_file = sys.argv[2:7]
        with open(source_file) as f:
            source = f.read()
        reload_under_load(int(port), app, ini, version, source)
    elif cmd == "ports":
        import socket

        socks = []
        for _ in range(int(sys.argv[2])):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
