//! `daemonize` and `logto`: where the instance's output goes and whether
//! it leaves the terminal. Runs first, while the process is still
//! single-threaded and before any socket is bound, as uWSGI does.

use crate::config::model::MasterConfig;
use crate::sys::daemon;

/// Applies `daemonize` (double fork, new session, stdin from /dev/null,
/// output to its file) and `logto` (output to its file; it wins over the
/// daemonize file). A reload's exec keeps both: the pid must not change.
/// `vassal`: an emperor supervises us, so we never detach.
pub fn apply(cfg: &MasterConfig, reload: bool, vassal: bool) -> Result<(), String> {
    if let Some(file) = cfg.daemonize.as_deref().filter(|_| !reload && !vassal) {
        daemon::detach().map_err(|e| format!("fork(): {e} [daemonize]"))?;
        daemon::null_stdin().map_err(|e| format!("open(\"/dev/null\"): {e} [daemonize]"))?;
        let target = cfg.logto.as_deref().unwrap_or(file);
        return redirect(target);
    }
    match cfg.logto.as_deref() {
        Some(file) => redirect(file),
        None => Ok(()),
    }
}

fn redirect(file: &str) -> Result<(), String> {
    daemon::redirect_output(file).map_err(|e| format!("open(\"{file}\"): {e} [logto]"))
}
