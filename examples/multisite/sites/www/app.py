"""www.example.com: a plain WSGI site."""


def application(environ, start_response):
    body = (
        "<h1>www.example.com</h1>\n"
        "<p>Served by a plain WSGI app in its own vassal.</p>\n"
        f"<p>Path: {environ['PATH_INFO']}</p>\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
