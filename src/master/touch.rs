//! `touch-reload`: the files whose change asks the master for a graceful
//! reload, polled on the master's tick.

use std::time::SystemTime;

use super::log;

/// `touch-reload` files: fire when an mtime changes or a file appears or
/// disappears.
pub(super) struct Touch {
    files: Vec<(String, Option<SystemTime>)>,
}

impl Touch {
    fn stamp(path: &str) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    pub(super) fn new(paths: &[String]) -> Touch {
        let files = paths
            .iter()
            .map(|p| {
                let s = Self::stamp(p);
                if s.is_none() {
                    log(format!("unable to stat() {p}, events will be triggered as soon as the file is created"));
                }
                (p.clone(), s)
            })
            .collect();
        Touch { files }
    }

    pub(super) fn fired(&mut self) -> bool {
        let mut fired = false;
        for (path, stamp) in &mut self.files {
            let now = Self::stamp(path);
            if now != *stamp {
                log(format!(
                    "*** {path} has been touched... grace them all !!! ***"
                ));
                *stamp = now;
                fired = true;
            }
        }
        fired
    }
}
