"""Returns the WSGI environ as JSON, keys in insertion order.

Non-string values are shown by type (or repr for simple constants) so the
same output can be compared between uWSGI and ruwsgi.
"""
import json


def describe(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, tuple)) or value is None:
        return repr(value)
    return "<%s>" % type(value).__name__


def application(environ, start_response):
    body = json.dumps([[k, describe(v)] for k, v in environ.items()]).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
