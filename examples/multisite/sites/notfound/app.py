"""The catch-all: any host no site claims."""


def application(environ, start_response):
    host = environ.get("HTTP_HOST", "")
    body = (
        "<h1>404 Not Found</h1>\n"
        f"<p>No site is configured for the host <code>{host or '(none)'}</code>.</p>\n"
    ).encode()
    start_response("404 Not Found", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
