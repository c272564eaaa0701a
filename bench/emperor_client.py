"""Client side of bench/emperor.sh: polls vassals until they serve, and
drives a reload under load. Standard library only; prints one line of
numbers per command for the shell script to collect."""

import errno
import http.client
import os
import selectors
import signal
import socket
import subprocess
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
    """Seconds from `start` (a time.time()) until every port serves (a 200
    to GET /). One thread with non-blocking sockets: a port that refuses is
    tried again 10 ms later, so the waiting costs the machine little CPU
    (fifty polling threads would compete with the vassals being timed) and
    a vassal that is slow to load its app delays only itself."""
    sel = selectors.DefaultSelector()
    retry_at = {p: 0.0 for p in ports}
    done = {}

    def later(port):
        retry_at[port] = time.time() + 0.01

    while len(done) < len(ports) and time.time() < deadline:
        now = time.time()
        for port, at in list(retry_at.items()):
            if at > now:
                continue
            del retry_at[port]
            sock = socket.socket()
            sock.setblocking(False)
            err = sock.connect_ex(("127.0.0.1", port))
            if err in (0, errno.EINPROGRESS):
                sel.register(sock, selectors.EVENT_WRITE, (port, bytearray()))
            else:
                sock.close()
                later(port)
        for key, events in sel.select(timeout=0.005):
            sock, (port, got) = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sel.unregister(sock)
                    sock.close()
                    later(port)
                    continue
                try:
                    sock.send(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
                except OSError:
                    sel.unregister(sock)
                    sock.close()
                    later(port)
                    continue
                sel.modify(sock, selectors.EVENT_READ, (port, got))
                continue
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            got.extend(chunk)
            if chunk and b"\r\n" not in got:
                continue
            sel.unregister(sock)
            sock.close()
            if got.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"200"]:
                done[port] = time.time()
            else:
                later(port)
    if len(done) < len(ports):
        print("timeout:", len(ports) - len(done), "not serving", file=sys.stderr)
        sys.exit(1)
    return max(done.values()) - start


def cold_start(log, ports, cmd, deadline_s):
    """Launches the emperor command (own session, output to `log`) and
    prints the seconds until every port serves. The client launches it so
    that its own start-up (an interpreter, perhaps behind a version
    manager's shim) is not inside the timed window; the emperor and its
    vassals are stopped afterwards (SIGINT, then SIGKILL to the group)."""
    with open(log, "ab") as out:
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        took = wait_all(start, ports, time.time() + deadline_s)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
    return took


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
    elif cmd == "cold":
        # cold LOG TIMEOUT PORT... -- COMMAND...
        split = sys.argv.index("--")
        log, timeout = sys.argv[2], float(sys.argv[3])
        ports = [int(p) for p in sys.argv[4:split]]
        print(f"{cold_start(log, ports, sys.argv[split + 1:], timeout):.3f}")
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
