"""A minimal app for the Procfile example."""


def application(environ, start_response):
    body = b"Hello from a Procfile-managed uwsgi\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
