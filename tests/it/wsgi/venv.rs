//! `home`/`virtualenv`: an app imports what only its virtualenv has, and
//! `sys.prefix` is the virtualenv, with the standard library still found.

use std::process::Command;

use super::{skip, Instance};

#[test]
fn home_virtualenv_is_used_by_the_app() {
    let it_dir = crate::util::TempDir::new();
    let venv = it_dir.path().join("venv");
    // The python3 on PATH is the one the binary was built against (pyo3
    // builds with it), so the virtualenv matches the embedded interpreter.
    let made = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        skip(
            "home_virtualenv_is_used_by_the_app",
            "python3 -m venv failed",
        );
        return;
    }
    let site = std::fs::read_dir(venv.join("lib"))
        .expect("venv/lib")
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("venv site-packages");
    std::fs::write(site.join("venvonly.py"), "VALUE = 'from the venv'\n").expect("module");
    let app = it_dir.path().join("app.py");
    std::fs::write(
        &app,
        "import sys, json, venvonly\n\
         def application(environ, start_response):\n\
         \x20   body = ' | '.join([venvonly.VALUE, sys.prefix, json.__name__]).encode()\n\
         \x20   start_response('200 OK', [('Content-Length', str(len(body)))])\n\
         \x20   return [body]\n",
    )
    .expect("app");
    for key in ["home", "virtualenv", "venv"] {
        let it = Instance::start(&format!(
            "master = true\n{key} = {}\nwsgi-file = {}",
            venv.display(),
            app.display()
        ));
        let want = format!("from the venv | {} | json", venv.display());
        it.ok(&it.get("/"), want.as_bytes());
    }
}
