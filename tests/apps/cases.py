"""One WSGI app, one behaviour per path; used to compare ruwsgi with uWSGI.

/stream        generator, three yields, no Content-Length
/write         the legacy write() callable, then an empty iterable
/raise         raises before start_response
/raise-late    raises after the first chunk
/twice         calls start_response twice without exc_info
/str           yields str instead of bytes
/none          returns None (not iterable)
/bytes         returns bytes directly (uWSGI accepts it)
/exc-info      start_response(..., exc_info) replacing an unsent head
/no-start      returns [] without calling start_response
/file          wsgi.file_wrapper over this file (sendfile path)
/filelike      wsgi.file_wrapper over BytesIO (iteration path)
/echo          echoes the body, read in 64 KiB pieces (never whole)
/lines         counts lines of the body via iteration over wsgi.input
/close         iterable with close(); /closed tells whether it ran
/status        status given as a bare code: "404"
/sleep         sleeps QUERY_STRING seconds (default 1)
/big           streams 64 MiB in 1 MiB chunks (client disconnect tests)
/ids           "UID GID" of the process running the app
/pid           the pid of the process running the app
/total         "PID TOTAL": the pid and uwsgi.total_requests()
/seek          reads the body, seeks back to 0 and reads it again
/getenv        os.environ[QUERY_STRING], or "-" when unset
"""
import io
import os
import time

_closed = []


class Closing:
    def __init__(self):
        self.parts = [b"a", b"b"]

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        _closed.append(True)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    text = [("Content-Type", "text/plain")]
    if path == "/stream":
        def gen():
            for i in range(3):
                yield b"chunk%d-" % i
        start_response("200 OK", text)
        return gen()
    if path == "/write":
        write = start_response("200 OK", text)
        write(b"written-")
        write(b"twice")
        return []
    if path == "/raise":
        raise RuntimeError("boom before headers")
    if path == "/raise-late":
        def gen():
            yield b"partial"
            raise RuntimeError("boom after headers")
        start_response("200 OK", text)
        return gen()
    if path == "/twice":
        start_response("200 OK", text)
        start_response("201 Created", text)
        return [b"twice"]
    if path == "/str":
        start_response("200 OK", text)
        return ["not bytes"]
    if path == "/none":
        start_response("200 OK", text)
        return None
    if path == "/bytes":
        start_response("200 OK", text)
        return b"plain bytes"
    if path == "/exc-info":
        start_response("200 OK", text)
        try:
            raise ValueError("handled")
        except ValueError:
            import sys
            start_response("500 Oops", text, sys.exc_info())
        return [b"recovered"]
    if path == "/no-start":
        return []
    if path == "/file":
        start_response("200 OK", text)
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 4096)
    if path == "/filelike":
        start_response("200 OK", text)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 10000), 4096)
    if path == "/echo":
        body = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(length))])

        def gen():
            while True:
                piece = body.read(65536)
                if not piece:
                    break
                yield piece
        return gen()
    if path == "/lines":
        n = sum(1 for _ in environ["wsgi.input"])
        out = b"%d lines" % n
        start_response("200 OK", text + [("Content-Length", str(len(out)))])
        return [out]
    if path == "/close":
        start_response("200 OK", text)
        return Closing()
    if path == "/closed":
        out = repr(len(_closed)).encode()
        start_response("200 OK", text)
        return [out]
    if path == "/status":
        start_response("404", text)
        return [b"nope"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
        start_response("200 OK", text)
        return [b"slept"]
    if path == "/big":
        start_response("200 OK", text)
        return (b"x" * (1 << 20) for _ in range(64))
    if path == "/pid":
        start_response("200 OK", text)
        return [b"%d" % os.getpid()]
    if path == "/total":
        import uwsgi

        start_response("200 OK", text)
        return [b"%d %d" % (os.getpid(), uwsgi.total_requests())]
    if path == "/ids":
        start_response("200 OK", text)
        return [b"%d %d" % (os.getuid(), os.getgid())]
    if path == "/seek":
        body = environ["wsgi.input"]
        first = body.read()
        body.seek(0)
        again = body.read()
        out = b"%d %s" % (len(first), b"same" if first == again else b"differ")
        start_response("200 OK", text)
        return [out]
    if path == "/getenv":
        value = os.environ.get(environ.get("QUERY_STRING", ""), "-")
        start_response("200 OK", text)
        return [value.encode()]
    start_response("200 OK", text)
    return [b"default"]
