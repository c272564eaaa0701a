"""blog.example.com: a Flask site when Flask is installed, else plain WSGI."""

try:
    from flask import Flask
except ImportError:  # keep the example runnable without Flask
    Flask = None

if Flask is not None:
    application = Flask(__name__)

    @application.route("/")
    def index():
        return "<h1>blog.example.com</h1>\n<p>Served by Flask in its own vassal.</p>\n"

    @application.route("/posts/<int:n>")
    def post(n):
        return {"post": n, "title": f"Post number {n}"}

else:

    def application(environ, start_response):
        body = b"<h1>blog.example.com</h1>\n<p>Install Flask to see the Flask version.</p>\n"
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]
