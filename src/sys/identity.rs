//! Users and groups: name lookups through the C library (so NSS sources
//! such as LDAP work as they do for uWSGI) and the privilege drop.

use std::ffi::{CStr, CString};
use std::io;

/// A user as the password database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub name: String,
}

/// Room for the strings getpwnam_r/getgrnam_r return.
const LOOKUP_BUF: usize = 16 * 1024;

/// Looks a user up by name.
pub fn user_by_name(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: `pw` is a plain C struct written by getpwnam_r; its string
    // pointers point into `buf`, which outlives every read below; `out` is
    // null or `&mut pw` after the call.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        );
        if rc != 0 || out.is_null() {
            return None;
        }
        Some(User {
            uid: pw.pw_uid,
            name: CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned(),
        })
    }
}

/// The name of `uid`, if the password database has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: as in `user_by_name`, with getpwuid_r.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out);
        if rc != 0 || out.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned())
    }
}

/// Looks a group up by name; returns its gid.
pub fn group_by_name(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUF];
    // SAFETY: `gr` is a plain C struct written by getgrnam_r (strings in
    // `buf`); only the integer gid is read.
    unsafe {
        let mut gr: libc::group = std::mem::zeroed();
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            cname.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        );
        if rc != 0 || out.is_null() {
            return None;
        }
        Some(gr.gr_gid)
    }
}

/// The real and effective user ids.
pub fn uids() -> (u32, u32) {
    // SAFETY: getuid/geteuid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::geteuid()) }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// setgid(2): real, effective and saved group id.
pub fn set_gid(gid: u32) -> io::Result<()> {
    // SAFETY: integer argument, no memory involved.
    check(unsafe { libc::setgid(gid) })
}

/// The supplementary groups: those of `user` (initgroups), or none.
pub fn set_groups(user: Option<&str>, gid: u32) -> io::Result<()> {
    match user.and_then(|u| CString::new(u).ok()) {
        // SAFETY: `u` is a valid NUL-terminated string for the call.
        Some(u) => check(unsafe { libc::initgroups(u.as_ptr(), gid) }),
        // SAFETY: an empty list: size 0 and a null pointer are allowed.
        None => check(unsafe { libc::setgroups(0, std::ptr::null()) }),
    }
}

/// setuid(2): real, effective and saved user id.
pub fn set_uid(uid: u32) -> io::Result<()> {
    // SAFETY: integer argument, no memory involved.
    check(unsafe { libc::setuid(uid) })
}

/// chown(2) of a path (a unix socket); `None` keeps that id.
pub fn chown(path: &str, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::chown(path, uid, gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(user_by_name("root").map(|u| u.uid), Some(0));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_by_name("root"), Some(0));
        assert_eq!(user_by_name("no-such-user-here"), None);
        assert_eq!(group_by_name("no-such-group-here"), None);
        assert_eq!(user_by_name("a\0b"), None);
    }
}
