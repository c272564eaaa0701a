"""The hello app wrapped in wsgiref.validate.validator: any PEP 3333
violation by the server (environ types, wsgi.input, start_response
semantics, close()) raises an AssertionError inside the request."""
from wsgiref.validate import validator


def hello(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    out = b"validated " + body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(out)))])
    return [out]


application = validator(hello)
