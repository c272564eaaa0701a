//! `uid`, `gid` and `chown-socket`: names or numbers resolved through the
//! system's user and group databases, the privilege drop with uWSGI's log
//! lines.
//!
//! The drop happens once the sockets are bound (and chowned) and the
//! pidfile is written, before Python starts, so the app never runs as
//! root while a `uid` is configured. uWSGI drops before binding its
//! regular sockets, which makes a privileged port unusable with `uid`
//! (README, differences).

use crate::config::model::{MasterConfig, Setting};
use crate::sys::identity;

fn is_number(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// A user id and, when known, the name for initgroups.
fn resolve_user(s: &Setting) -> Result<(u32, Option<String>), String> {
    let v = s.value.trim();
    if is_number(v) {
        let uid = v
            .parse()
            .map_err(|_| format!("invalid uid {v} ({})", s.origin))?;
        return Ok((uid, identity::user_name(uid)));
    }
    identity::user_by_name(v)
        .map(|u| (u.uid, Some(u.name)))
        .ok_or_else(|| format!("unable to find user {v} ({})", s.origin))
}

fn resolve_group(value: &str, origin: &str) -> Result<u32, String> {
    let v = value.trim();
    if is_number(v) {
        return v.parse().map_err(|_| format!("invalid gid {v} ({origin})"));
    }
    identity::group_by_name(v).ok_or_else(|| format!("unable to find group {v} ({origin})"))
}

/// `chown-socket = user[:group]` on a freshly bound unix socket.
pub fn chown_socket(s: &Setting, path: &str) -> Result<(), String> {
    let (user, group) = match s.value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s.value.as_str(), None),
    };
    let user = Setting {
        value: user.to_string(),
        origin: s.origin.clone(),
    };
    let (uid, _) = resolve_user(&user)?;
    let gid = group.map(|g| resolve_group(g, &s.origin)).transpose()?;
    identity::chown(path, Some(uid), gid).map_err(|e| format!("chown(): {e} [socket {path}]"))
}

/// Drops to `gid` then `uid` (supplementary groups: the user's, or none).
/// A no-op when neither is set. Run again after a reload's exec, where we
/// already are that user, it only checks.
pub fn drop_privileges(cfg: &MasterConfig) -> Result<(), String> {
    let user = cfg.uid.as_ref().map(resolve_user).transpose()?;
    let gid = cfg
        .gid
        .as_ref()
        .map(|g| resolve_group(&g.value, &g.origin))
        .transpose()?;
    let (_, euid) = identity::uids();
    if euid != 0 {
        // Not root (e.g. after a reload): the ids must already be right.
        if let Some((uid, _)) = &user {
            if *uid != euid {
                identity::set_uid(*uid).map_err(|e| format!("setuid(): {e}"))?;
            }
        }
        return Ok(());
    }
    if let Some(gid) = gid {
        log(format!("setgid() to {gid}"));
        identity::set_gid(gid).map_err(|e| format!("setgid(): {e}"))?;
        let name = user
            .as_ref()
            .and_then(|(uid, n)| (*uid != 0).then_some(n.as_deref()));
        identity::set_groups(name.flatten(), gid).map_err(|e| format!("setgroups(): {e}"))?;
    }
    if let Some((uid, _)) = user.filter(|(uid, _)| *uid != 0) {
        log(format!("setuid() to {uid}"));
        identity::set_uid(uid).map_err(|e| format!("setuid(): {e}"))?;
    }
    Ok(())
}

fn log(line: impl AsRef<str>) {
    super::log(line);
}
