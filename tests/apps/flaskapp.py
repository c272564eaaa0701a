"""A small Flask app (module loader test: `module = flaskapp:app`)."""
from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    return "flask ok"


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["f"]
    return "%s %d %s" % (f.filename, len(f.read()), request.form.get("x"))
