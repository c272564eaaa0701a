//! Scanning (`uwsgi_imperial_monitor_directory`/`_glob`): comparing what
//! the monitors see with the table. A new file is queued and started a
//! few per loop turn (10,000 new files never stall the loop); a newer
//! mtime reloads; a missing file stops. Full scans run every
//! `emperor-freq`; inotify events re-examine just the named files.

use std::collections::HashSet;
use std::time::Instant;

use super::monitor::{FileMeta, Scan};
use super::table::Emperor;
use super::vassal::{Event, Now};
use super::watch::{self, Changes, Watcher};

/// New vassals started per loop turn at most.
pub const MAX_STARTS_PER_TURN: usize = 64;

fn base_name(name: &[u8], zerg: bool) -> &[u8] {
    match (zerg, name.iter().rposition(|&b| b == b':')) {
        (true, Some(i)) => &name[..i],
        _ => name,
    }
}

impl Emperor<'_> {
    /// A vassal file is present with `meta`.
    fn found(&mut self, monitor: usize, name: &[u8], meta: FileMeta, now: Now) {
        let Some(&key) = self.by_name.get(name) else {
            self.queue_new(monitor, name.to_vec());
            return;
        };
        let v = &self.vassals[key].v;
        if self.cfg.tyrant && (meta.uid, meta.gid) != (v.uid, v.gid) {
            self.step(key, Event::OwnerChanged, now);
        } else if meta.mtime > v.last_mod {
            self.step(key, Event::Modified(meta.mtime), now);
        }
    }

    /// The vassal file `name` of `monitor` is gone: stop it and its zergs.
    fn gone(&mut self, monitor: usize, name: &[u8], now: Now) {
        let mut keys: Vec<usize> = self
            .by_name
            .get(name)
            .copied()
            .filter(|&k| self.vassals[k].v.monitor == monitor)
            .into_iter()
            .collect();
        if self.has_zergs() {
            keys.extend(
                self.vassals
                    .iter()
                    .filter(|(_, e)| {
                        e.v.zerg && e.v.monitor == monitor && base_name(&e.v.name, true) == name
                    })
                    .map(|(k, _)| k),
            );
        }
        for key in keys {
            self.step(key, Event::Gone, now);
        }
    }

    /// Queues a file to be examined and started soon.
    pub fn queue_new(&mut self, monitor: usize, name: Vec<u8>) {
        if self.ragnarok.is_none() && self.pending_set.insert((monitor, name.clone())) {
            self.pending.push_back((monitor, name));
        }
    }

    /// Starts up to [`MAX_STARTS_PER_TURN`] queued files.
    pub fn start_pending(&mut self, now: Now) {
        for _ in 0..MAX_STARTS_PER_TURN {
            let Some((monitor, name)) = self.pending.pop_front() else {
                return;
            };
            self.pending_set.remove(&(monitor, name.clone()));
            if self.by_name.contains_key(&name) {
                continue;
            }
            if let Some(meta) = self.monitors[monitor].stat(&name, &self.stat_opts()) {
                self.add(monitor, name, meta, now);
            }
        }
    }

    /// Remembers to try a throttled name again when its delay is over.
    pub fn schedule_retry(&mut self, at: Instant, monitor: usize, name: Vec<u8>) {
        if self.retry_at.get(&name).is_some_and(|&t| t <= at) {
            return;
        }
        self.retry_at.insert(name.clone(), at);
        self.retries.push(std::cmp::Reverse((at, monitor, name)));
    }

    /// Queues the names whose throttle delay is over (all with `force`).
    pub fn release_retries(&mut self, now: Instant, force: bool) {
        while let Some(std::cmp::Reverse((at, _, _))) = self.retries.peek() {
            if *at > now && !force {
                break;
            }
            let Some(std::cmp::Reverse((at, monitor, name))) = self.retries.pop() else {
                break;
            };
            if self.retry_at.get(&name) == Some(&at) {
                self.retry_at.remove(&name);
                self.queue_new(monitor, name);
            }
        }
    }

    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.peek().map(|std::cmp::Reverse((at, _, _))| *at)
    }

    /// Looks at one name again (after an inotify event or a death).
    fn rescan_one(&mut self, monitor: usize, name: &[u8], now: Now) {
        if let Some(meta) = self.monitors[monitor].stat(name, &self.stat_opts()) {
            self.found(monitor, name, meta, now);
            return;
        }
        // Only trust "missing" while the directory itself is there; a
        // vanished directory stops nothing (the full scan reports it).
        let cwd = self.monitors[monitor].vassal_cwd();
        if std::fs::metadata(cwd).is_ok_and(|m| m.is_dir()) {
            self.gone(monitor, name, now);
        }
    }

    /// A full scan of one monitor, then its watch follows what it found.
    pub fn scan_monitor(&mut self, monitor: usize, watcher: Option<&mut Watcher>, now: Now) {
        if self.ragnarok.is_some() {
            return;
        }
        let opts = self.stat_opts();
        match self.monitors[monitor].scan(&opts) {
            Scan::Unavailable { first, error } => {
                if first {
                    self.log.plain(format!(
                        "chdir(): {} [emperor {}]",
                        crate::config::logic::strerror(&error),
                        String::from_utf8_lossy(&self.monitors[monitor].label())
                    ));
                }
            }
            Scan::Files(files) => {
                let seen: HashSet<&[u8]> = files.iter().map(|(n, _)| n.as_slice()).collect();
                let missing: Vec<Vec<u8>> = self
                    .vassals
                    .iter()
                    .filter(|(_, e)| {
                        e.v.monitor == monitor && !seen.contains(base_name(&e.v.name, e.v.zerg))
                    })
                    .map(|(_, e)| base_name(&e.v.name, e.v.zerg).to_vec())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                for (name, meta) in &files {
                    self.found(monitor, name, *meta, now);
                }
                for name in missing {
                    self.gone(monitor, &name, now);
                }
            }
        }
        if let Some(w) = watcher {
            let target = watch::target(&self.monitors[monitor]);
            let _ = w.sync(monitor, target);
        }
    }

    /// Full scans of every monitor.
    pub fn scan_all(&mut self, mut watcher: Option<&mut Watcher>, now: Now) {
        for m in 0..self.monitors.len() {
            self.scan_monitor(m, watcher.as_deref_mut(), now);
        }
    }

    /// Acts on what inotify reported.
    pub fn apply_changes(&mut self, changes: Changes, mut watcher: Option<&mut Watcher>, now: Now) {
        for &m in &changes.full {
            self.scan_monitor(m, watcher.as_deref_mut(), now);
        }
        for (m, names) in changes.names {
            if changes.full.contains(&m) || self.ragnarok.is_some() {
                continue;
            }
            for name in names {
                if super::monitor::is_vassal_name(&name, &self.cfg.vassal_args.extra_extensions) {
                    self.rescan_one(m, &name, now);
                }
            }
        }
    }
}
