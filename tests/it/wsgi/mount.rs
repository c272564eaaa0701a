//! `mount` with `manage-script-name`: the longest mountpoint moves from
//! PATH_INFO to SCRIPT_NAME as uWSGI does it, trailing slash included,
//! and a path equal to a slash-terminated mountpoint minus its slash
//! gets an empty PATH_INFO (uWSGI underflows and sends memory).

use super::Instance;

/// SCRIPT_NAME and PATH_INFO the environ app saw for `path`.
fn split(it: &Instance, path: &str) -> (String, String) {
    let reply = it.get(path);
    assert_eq!(reply.status(), Some(200), "{path}: {:?}", reply.text());
    let env = crate::server::parse_environ(reply.body()).expect("environ JSON");
    let var = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{path}: no {k}"))
    };
    (var("SCRIPT_NAME"), var("PATH_INFO"))
}

#[test]
fn mountpoints_move_to_script_name() {
    let it = Instance::start(
        "master = true\nmanage-script-name = true\n\
         mount = /app/=@APPS@/environ.py\nmount = /other=@APPS@/environ.py",
    );
    let cases = [
        ("/app/x", "/app/", "x"),
        ("/app", "/app/", ""),
        ("/other/y", "/other", "/y"),
        ("/other", "/other", ""),
    ];
    for (path, script_name, path_info) in cases {
        let got = split(&it, path);
        assert_eq!(got, (script_name.into(), path_info.into()), "{path}");
    }
    // The worker that served `/app` is still the first one.
    it.logged("spawned uWSGI worker 1 (");
    assert!(
        !it.server.log().contains("panicked"),
        "{}",
        it.server.tail()
    );
}
