//! The top of the program: resolve the configuration, handle the outputs
//! that end the process early (`--get`, `--dump-options`, `--show-config`
//! with a binary patch), then pick a role.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use crate::config::{self, show, Config, Halt, HostFacts, Inputs, Io};
use crate::sys;

/// Runs the program with this process's argv and environment and returns
/// the exit status.
pub fn main() -> i32 {
    if let Some(code) = crate::emperor::handoff::resume() {
        return code;
    }
    let argv: Vec<Vec<u8>> = std::env::args_os().map(|a| a.as_bytes().to_vec()).collect();
    let env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    run(Inputs {
        argv,
        env,
        facts: HostFacts::detect(),
    })
}

/// Runs the program for the given inputs and returns the exit status.
pub fn run(inputs: Inputs) -> i32 {
    let argv = inputs.argv.clone();
    let env = inputs.env.clone();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let resolved = config::resolve(
        inputs,
        Io {
            out: &mut out,
            err: &mut err,
        },
    );
    let _ = out.flush();
    let config = match resolved {
        Ok(c) => c,
        Err(Halt::Exit(code)) => return code,
        Err(Halt::Fail(e)) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
        Err(Halt::SignalPidfile { pidfile, action }) => {
            return match sys::signal_pidfile(&pidfile, sys::pidfile_action_signal(action)) {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = writeln!(err, "{msg}");
                    1
                }
            };
        }
    };
    if !config.get.is_empty() {
        let _ = out.write_all(&show::get(&config));
        let _ = out.flush();
        return 0;
    }
    if config.flag("dump-options") {
        let _ = out.write_all(&show::dump_options(&config.custom));
        let _ = out.flush();
        return 0;
    }
    if config.flag("show-config") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let prefix = show::log_prefix(
            &config,
            |f| sys::local_strftime(f, now),
            || sys::ctime24(now),
        );
        let _ = err.write_all(&show::show_config(&config, &prefix));
    }
    let _ = err.flush();
    if let Some(Some(program)) = config.last("privileged-binary-patch") {
        let e = sys::exec_patch(program, &argv);
        let _ = writeln!(
            err,
            "execvp(): {e} [privileged-binary-patch {}]",
            String::from_utf8_lossy(program)
        );
        return 1;
    }
    if let Some(Some(command)) = config.last("privileged-binary-patch-arg") {
        let e = sys::exec_shell(command);
        let _ = writeln!(err, "execvp(): {e} [privileged-binary-patch-arg]");
        return 1;
    }
    drop(err);
    start(&config, &argv, &env)
}

/// Options that give an instance something to run; without any of them
/// uWSGI refuses to start.
const RUNNABLE: &[&str] = &[
    "socket",
    "uwsgi-socket",
    "http-socket",
    "http11-socket",
    "fastcgi-socket",
    "fastcgi-nph-socket",
    "scgi-socket",
    "scgi-nph-socket",
    "puwsgi-socket",
    "shared-socket",
    "http",
    "https",
    "http-to",
    "no-server",
    "emperor",
    "command-mode",
    "attach-daemon",
    "attach-daemon2",
    "attach-control-daemon",
    "smart-attach-daemon",
    "cron",
    "spooler",
    "emperor-proxy-socket",
];

/// Starts the role the configuration asks for.
fn start(config: &Config, argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> i32 {
    let mut err = std::io::stderr().lock();
    #[cfg(feature = "python")]
    crate::master::remember_start_dir();
    if let Some(Some(dir)) = config.last("chdir") {
        let _ = writeln!(err, "chdir() to {}", String::from_utf8_lossy(dir));
        if let Err(e) = std::env::set_current_dir(std::ffi::OsStr::from_bytes(dir)) {
            let _ = writeln!(
                err,
                "chdir(): {} [chdir = {}]",
                config::logic::strerror(&e),
                String::from_utf8_lossy(dir)
            );
            return 1;
        }
    }
    // systemd socket activation brings its own sockets.
    let activated = env.iter().any(|(k, _)| k == b"LISTEN_FDS");
    if !activated && !RUNNABLE.iter().any(|k| config.last(k).is_some()) {
        let _ = writeln!(
            err,
            "The -s/--socket option is missing and stdin is not a socket."
        );
        return 1;
    }
    // uWSGI users would otherwise believe these work.
    for warning in config::support::warnings(config.applied.iter().map(|a| a.key.as_slice())) {
        let _ = writeln!(err, "{warning}");
    }
    drop(err);
    let standalone_emperor = config.last("emperor").is_some()
        && !config.master_config().master
        && config.socket_config().sockets.is_empty()
        && config.last("http").is_none();
    if standalone_emperor {
        let binary = std::env::current_exe()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        let cfg = crate::emperor::EmperorConfig::from_config(config, &binary);
        return crate::emperor::handoff::run(&cfg);
    }
    serve(config, argv, env)
}

#[cfg(feature = "python")]
fn serve(config: &Config, argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> i32 {
    crate::master::run(config, argv, env)
}

#[cfg(not(feature = "python"))]
fn serve(_config: &Config, _argv: &[Vec<u8>], _env: &[(Vec<u8>, Vec<u8>)]) -> i32 {
    eprintln!("this uwsgi was built without Python support (cargo feature `python`)");
    1
}
