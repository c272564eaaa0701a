//! Where vassal files come from (spec §1.2, §1.3, config.md §9.2): a
//! directory monitor (bare file names, vassal cwd = the directory) or a
//! glob monitor (names as the glob returns them, cwd = the emperor's
//! start-up directory), and which names are vassals.
//!
//! Differences from uWSGI, on purpose: a directory that does not exist at
//! start is a directory monitor that waits for it (uWSGI silently turns it
//! into a glob that never matches); the emperor does not `chdir()` into
//! the directory, it stats `DIR/name` and gives the vassal its cwd; a file
//! that turns into a directory counts as removed. Not owned here: change
//! notification (`watch`), what to do about a file (`table`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::vassal::Mtime;

/// Suffixes that make a file a vassal (`uwsgi_emperor_is_valid`).
const VASSAL_SUFFIXES: &[&[u8]] = &[b".xml", b".ini", b".yml", b".yaml", b".js", b".json"];
/// Names must be shorter than this (uWSGI's `char name[0xff]`).
pub const MAX_NAME: usize = 0xff;

/// Is `name` (a bare name or a glob path) a vassal file name?
pub fn is_vassal_name(name: &[u8], extra: &[Vec<u8>]) -> bool {
    let suffix_ok = VASSAL_SUFFIXES.iter().any(|s| name.ends_with(s))
        || extra.iter().any(|e| !e.is_empty() && name.ends_with(e));
    suffix_ok && name.len() < MAX_NAME
}

fn has_magic(s: &[u8]) -> bool {
    s.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

fn os(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// The kind of monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Glob,
}

/// What the monitor reads of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub mtime: Mtime,
    pub uid: u32,
    pub gid: u32,
}

/// The options that change what a file is.
#[derive(Debug, Clone, Copy)]
pub struct StatOpts<'a> {
    pub extra_extensions: &'a [Vec<u8>],
    /// `emperor-nofollow`: mtime and existence of a symlink itself.
    pub nofollow: bool,
    /// `emperor-tyrant-nofollow`: ownership of a symlink itself.
    pub tyrant_nofollow: bool,
}

/// The result of a full scan.
#[derive(Debug)]
pub enum Scan {
    /// The vassal files present now, in `readdir()`/glob order.
    Files(Vec<(Vec<u8>, FileMeta)>),
    /// The directory cannot be read: nothing may be stopped for it.
    /// `first` is set on the scan that found it gone.
    Unavailable { first: bool, error: std::io::Error },
}

/// One `emperor = ...` value.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub kind: Kind,
    /// The value without its `dir://`/`glob://` prefix.
    pub arg: Vec<u8>,
    /// Dir: the directory's real path, once it exists.
    pub dir: Option<PathBuf>,
    /// The emperor's start-up directory.
    pub base: PathBuf,
    unavailable: bool,
}

impl Monitor {
    /// Chooses the monitor for a value (`emperor_build_scanners`).
    pub fn new(value: &[u8], base: &Path) -> Monitor {
        let (kind, arg) = if let Some(rest) = value.strip_prefix(b"dir://") {
            (Kind::Dir, rest)
        } else if let Some(rest) = value.strip_prefix(b"glob://") {
            (Kind::Glob, rest)
        } else {
            let matches = crate::config::glob::glob(value);
            let one_dir = matches.len() == 1 && matches[0].ends_with(b"/");
            let missing = !has_magic(value) && std::fs::symlink_metadata(os(value)).is_err();
            // A missing plain path that is no vassal file name is a
            // directory yet to come (uWSGI would make it a dead glob).
            let dir = one_dir || (missing && !is_vassal_name(value, &[]));
            (if dir { Kind::Dir } else { Kind::Glob }, value)
        };
        let mut m = Monitor {
            kind,
            arg: arg.to_vec(),
            dir: None,
            base: base.to_path_buf(),
            unavailable: false,
        };
        m.resolve();
        m
    }

    /// Dir: (re)computes the real path; false when it does not exist.
    fn resolve(&mut self) -> bool {
        if self.kind != Kind::Dir {
            return true;
        }
        match std::fs::canonicalize(self.base.join(os(&self.arg))) {
            Ok(p) if p.is_dir() => {
                self.dir = Some(p);
                true
            }
            _ => false,
        }
    }

    /// Dir: the directory does not exist (yet).
    pub fn is_missing(&self) -> bool {
        self.kind == Kind::Dir && self.dir.is_none()
    }

    /// What stats show (`"emperor"`, `"monitor"`): the real path of a
    /// directory, the pattern of a glob.
    pub fn label(&self) -> Vec<u8> {
        match &self.dir {
            Some(d) => d.as_os_str().as_bytes().to_vec(),
            None => self.arg.clone(),
        }
    }

    /// The vassals' working directory.
    pub fn vassal_cwd(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| self.base.clone())
    }

    /// The path to stat for a vassal name.
    pub fn path_of(&self, name: &[u8]) -> PathBuf {
        match (self.kind, &self.dir) {
            (Kind::Dir, Some(d)) => d.join(os(name)),
            _ => self.base.join(os(name)),
        }
    }

    /// Glob: the directory part of the pattern when it has no wildcards
    /// (the one directory whose changes can change the matches).
    pub fn glob_dir(&self) -> Option<PathBuf> {
        let parent = os(&self.arg).parent()?;
        if self.kind != Kind::Glob || has_magic(parent.as_os_str().as_bytes()) {
            return None;
        }
        Some(self.base.join(parent))
    }

    /// Stats one candidate: `Some` for a vassal file (a regular file, or a
    /// symlink too with `nofollow`).
    pub fn stat(&self, name: &[u8], opts: &StatOpts) -> Option<FileMeta> {
        if !is_vassal_name(name, opts.extra_extensions) {
            return None;
        }
        let path = self.path_of(name);
        let meta = match opts.nofollow {
            true => std::fs::symlink_metadata(&path),
            false => std::fs::metadata(&path),
        };
        file_meta(meta.ok()?, &path, opts)
    }

    /// [`Monitor::stat`] for a directory entry: the common case (a plain
    /// file, or any entry with `nofollow`) is a `stat` relative to the
    /// open directory, without walking the whole path again.
    fn stat_entry(&self, entry: &std::fs::DirEntry, opts: &StatOpts) -> Option<FileMeta> {
        let name = entry.file_name();
        if !is_vassal_name(name.as_bytes(), opts.extra_extensions) {
            return None;
        }
        let follow = !opts.nofollow && entry.file_type().ok()?.is_symlink();
        let meta = match follow {
            true => std::fs::metadata(entry.path()),
            false => entry.metadata(),
        };
        file_meta(meta.ok()?, &entry.path(), opts)
    }

    /// Lists every vassal file now.
    pub fn scan(&mut self, opts: &StatOpts) -> Scan {
        if self.kind == Kind::Glob {
            let names = crate::config::glob::glob(&self.arg);
            let files = names
                .into_iter()
                .filter_map(|n| self.stat(&n, opts).map(|m| (n, m)));
            return Scan::Files(files.collect());
        }
        let enoent = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let listed = match &self.dir {
            Some(d) => std::fs::read_dir(d),
            None => Err(enoent()),
        };
        let listed = match listed {
            Err(_) if self.resolve() => self
                .dir
                .as_ref()
                .map_or_else(|| Err(enoent()), std::fs::read_dir),
            other => other,
        };
        match listed {
            Ok(rd) => {
                self.unavailable = false;
                let files = rd.filter_map(|e| {
                    let e = e.ok()?;
                    let meta = self.stat_entry(&e, opts)?;
                    Some((e.file_name().as_bytes().to_vec(), meta))
                });
                Scan::Files(files.collect())
            }
            Err(error) => {
                let first = !self.unavailable && self.dir.is_some();
                self.unavailable = true;
                Scan::Unavailable { first, error }
            }
        }
    }
}

/// A vassal file's metadata, if `meta` is one (a regular file, or a
/// symlink too with `nofollow`).
fn file_meta(meta: std::fs::Metadata, path: &Path, opts: &StatOpts) -> Option<FileMeta> {
    let kind = meta.file_type();
    if !(kind.is_file() || (opts.nofollow && kind.is_symlink())) {
        return None;
    }
    let (uid, gid) = if opts.tyrant_nofollow {
        let l = std::fs::symlink_metadata(path).ok()?;
        (l.uid(), l.gid())
    } else {
        (meta.uid(), meta.gid())
    };
    let mtime = Mtime {
        secs: meta.mtime(),
        nanos: meta.mtime_nsec() as u32,
    };
    Some(FileMeta { mtime, uid, gid })
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
