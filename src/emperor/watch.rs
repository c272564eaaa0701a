//! Change notification for the monitors with inotify, so that a new,
//! touched or removed vassal file is acted on in milliseconds. The
//! periodic rescan (`emperor-freq`) stays as the backstop: for globs with
//! wildcards in their directory part, for symlink targets elsewhere, when
//! inotify is unavailable, and after a queue overflow.
//!
//! One watch per monitor: its directory (events name the changed file),
//! its parent while the directory does not exist yet (to see it appear),
//! or the fixed directory of a glob (any event rescans the glob).

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::sys::inotify::{mask, Event, Inotify, Watch};

use super::monitor::{Kind, Monitor};

/// What a directory watch listens to.
const DIR_EVENTS: u32 = mask::CREATE
    | mask::DELETE
    | mask::MOVED_FROM
    | mask::MOVED_TO
    | mask::ATTRIB
    | mask::MODIFY
    | mask::CLOSE_WRITE
    | mask::DELETE_SELF
    | mask::MOVE_SELF
    | mask::ONLYDIR;
/// Reads per wake-up before yielding to the rest of the loop.
const MAX_READS: usize = 64;
/// Read buffer: many events per read.
const BUF_LEN: usize = 16 * 1024;

/// Which events of a watch concern its monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// The monitor's own directory: each event names a file.
    Names,
    /// The parent of a missing directory: only that child matters.
    Child(Vec<u8>),
    /// A glob's directory: anything means "scan the glob again".
    Everything,
}

/// The watch a monitor wants now. A directory that is not there (yet, or
/// any more) is waited for through its parent.
pub fn target(m: &Monitor) -> Option<(PathBuf, Interest)> {
    if m.kind == Kind::Glob {
        return Some((m.glob_dir()?, Interest::Everything));
    }
    let dir = m
        .dir
        .clone()
        .unwrap_or_else(|| m.base.join(std::ffi::OsStr::from_bytes(&m.arg)));
    if dir.is_dir() {
        return Some((dir, Interest::Names));
    }
    let child = dir.file_name()?.as_bytes().to_vec();
    Some((dir.parent()?.to_path_buf(), Interest::Child(child)))
}

/// What changed, per monitor.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Monitors to scan fully.
    pub full: HashSet<usize>,
    /// Single names to look at again, per monitor.
    pub names: HashMap<usize, HashSet<Vec<u8>>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.names.is_empty()
    }
}

#[derive(Debug)]
struct Slot {
    watch: Watch,
    path: PathBuf,
    interest: Interest,
}

/// The inotify instance and the watch of each monitor.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    slots: Vec<Option<Slot>>,
    buf: Vec<u8>,
    events: Vec<Event>,
}

impl Watcher {
    pub fn new(monitors: usize) -> std::io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::new()?,
            slots: (0..monitors).map(|_| None).collect(),
            buf: vec![0; BUF_LEN],
            events: Vec::new(),
        })
    }

    pub fn inotify(&self) -> &Inotify {
        &self.inotify
    }

    fn in_use(&self, watch: Watch) -> bool {
        self.slots.iter().flatten().any(|s| s.watch == watch)
    }

    /// Points monitor `idx`'s watch at what it wants now. An error means
    /// the target cannot be watched (the periodic rescan covers it).
    pub fn sync(&mut self, idx: usize, wanted: Option<(PathBuf, Interest)>) -> std::io::Result<()> {
        let current = self.slots[idx].as_ref().map(|s| (&s.path, &s.interest));
        if current == wanted.as_ref().map(|(p, i)| (p, i)) {
            return Ok(());
        }
        if let Some(old) = self.slots[idx].take() {
            if !self.in_use(old.watch) {
                let _ = self.inotify.rm_watch(old.watch);
            }
        }
        let Some((path, interest)) = wanted else {
            return Ok(());
        };
        let watch = self.inotify.add_watch(&path, DIR_EVENTS)?;
        self.slots[idx] = Some(Slot {
            watch,
            path,
            interest,
        });
        Ok(())
    }

    /// Reads pending events into `out`; true when more may be pending.
    pub fn read(&mut self, out: &mut Changes) -> bool {
        for _ in 0..MAX_READS {
            self.events.clear();
            match self.inotify.read_into(&mut self.buf, &mut self.events) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            let events = std::mem::take(&mut self.events);
            for e in &events {
                self.apply(e, out);
            }
            self.events = events;
        }
        true
    }

    fn apply(&mut self, e: &Event, out: &mut Changes) {
        if e.mask & mask::Q_OVERFLOW != 0 {
            out.full.extend(0..self.slots.len());
            return;
        }
        for idx in 0..self.slots.len() {
            let Some(slot) = &self.slots[idx] else {
                continue;
            };
            if slot.watch != e.watch {
                continue;
            }
            if e.mask & (mask::IGNORED | mask::DELETE_SELF | mask::MOVE_SELF) != 0 {
                // The directory went away (or moved): drop the watch; the
                // scan notices and the next sync watches what is there.
                if e.mask & mask::MOVE_SELF != 0 {
                    let _ = self.inotify.rm_watch(slot.watch);
                }
                self.slots[idx] = None;
                out.full.insert(idx);
                continue;
            }
            match &slot.interest {
                Interest::Names if !e.name.is_empty() => {
                    out.names.entry(idx).or_default().insert(e.name.clone());
                }
                Interest::Child(child) if e.name == *child => {
                    out.full.insert(idx);
                }
                Interest::Everything => {
                    out.full.insert(idx);
                }
                _ => {}
            }
        }
    }

    /// The path a monitor is watched through (tests, diagnostics).
    pub fn watched(&self, idx: usize) -> Option<&[u8]> {
        self.slots[idx]
            .as_ref()
            .map(|s| s.path.as_os_str().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn follows_a_directory_that_comes_and_goes() {
        let root = std::env::temp_dir().join(format!("ruwsgi-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let dir = root.join("vassals");
        let mut m = Monitor::new(dir.as_os_str().as_bytes(), Path::new("/"));
        let mut w = Watcher::new(1).unwrap();
        w.sync(0, target(&m)).unwrap();
        assert_eq!(
            w.watched(0),
            Some(root.as_os_str().as_bytes()),
            "parent while missing"
        );
        let mut ch = Changes::default();
        std::fs::write(root.join("noise"), b"").unwrap();
        w.read(&mut ch);
        assert!(
            ch.is_empty(),
            "other names in the parent are ignored: {ch:?}"
        );
        std::fs::create_dir(&dir).unwrap();
        w.read(&mut ch);
        assert!(ch.full.contains(&0));
        let opts = super::super::monitor::StatOpts {
            extra_extensions: &[],
            nofollow: false,
            tyrant_nofollow: false,
        };
        m.scan(&opts);
        w.sync(0, target(&m)).unwrap();
        assert_eq!(w.watched(0), Some(dir.as_os_str().as_bytes()));
        let mut ch = Changes::default();
        std::fs::write(dir.join("a.ini"), b"").unwrap();
        w.read(&mut ch);
        assert!(ch.names[&0].contains(b"a.ini".as_slice()), "{ch:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        let mut ch = Changes::default();
        w.read(&mut ch);
        assert!(ch.full.contains(&0));
        assert_eq!(w.watched(0), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
