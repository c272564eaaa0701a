"""Reports what the instance gave the app, as JSON; used by the option
audit tests (module forms, mount + manage-script-name, env, the uwsgi
module, threads).

/thread   starts and joins a Python thread (enable-threads)
/reload   calls uwsgi.reload()
anything  {"worker_id", "numproc", "greeting", "module", "script_name",
          "path_info"}
"""
import json
import os
import threading

import uwsgi


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/thread":
        box = []
        t = threading.Thread(target=lambda: box.append("ran"))
        t.start()
        t.join(5)
        out = (box[0] if box else "stuck").encode()
    elif path == "/reload":
        out = repr(uwsgi.reload()).encode()
    else:
        out = json.dumps({
            "worker_id": uwsgi.worker_id(),
            "numproc": uwsgi.numproc,
            "greeting": os.environ.get("GREETING", "-"),
            "module": _text(uwsgi.opt.get("module", b"-")),
            "script_name": environ.get("SCRIPT_NAME"),
            "path_info": path,
        }).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]
