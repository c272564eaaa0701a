"""The smallest WSGI app: a fixed body with Content-Type only."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!"]
