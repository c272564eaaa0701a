//! Throttling of vassals that die without ever being loyal
//! (`uwsgi_emperor_blacklist_*`, spec §1.8.e), with uWSGI's arithmetic:
//! levels are kept in microseconds; the first insertion uses
//! `emperor-throttle` *as microseconds* (1 ms by default, an upstream units
//! slip that makes the first retry immediate), every further death adds
//! `emperor-throttle` ms until `emperor-max-throttle` is passed, then the
//! level is halved (a saw-tooth). A name is not spawned again before
//! `last_attempt + level`. Loyalty or SIGURG clears entries.

use std::time::{Duration, Instant};

use super::log::Line;

/// Microseconds per millisecond.
const US_PER_MS: u64 = 1000;
/// `attempt` value at which the "unloyal bad behaving" line is logged.
const ATTEMPT_WARNING: u32 = 2;

/// One throttled name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Vec<u8>,
    /// Microseconds.
    pub throttle_us: u64,
    pub attempt: u32,
    pub first_attempt_wall: i64,
    pub last_attempt_wall: i64,
    last_attempt: Instant,
}

/// The blacklist, in insertion order (as the stats list it).
#[derive(Debug, Clone, Default)]
pub struct Blacklist {
    entries: Vec<Entry>,
}

impl Blacklist {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Records a death of an unloyal vassal; returns the lines to log.
    pub fn add(
        &mut self,
        id: &[u8],
        throttle_ms: u64,
        max_throttle_ms: u64,
        now: Instant,
        wall: i64,
    ) -> Vec<Line> {
        let mut lines = Vec::new();
        let name = String::from_utf8_lossy(id);
        let Some(e) = self.entries.iter_mut().find(|e| e.id == id) else {
            self.entries.push(Entry {
                id: id.to_vec(),
                throttle_us: throttle_ms,
                attempt: 0,
                first_attempt_wall: wall,
                last_attempt_wall: wall,
                last_attempt: now,
            });
            return lines;
        };
        e.last_attempt = now;
        e.last_attempt_wall = wall;
        if e.throttle_us < max_throttle_ms.saturating_mul(US_PER_MS) {
            e.throttle_us = e
                .throttle_us
                .saturating_add(throttle_ms.saturating_mul(US_PER_MS));
        } else {
            lines.push(Line::Verbose(format!(
                "[emperor] maximum throttle level for vassal {name} reached !!!"
            )));
            e.throttle_us /= 2;
        }
        e.attempt = e.attempt.saturating_add(1);
        if e.attempt == ATTEMPT_WARNING {
            lines.push(Line::Verbose(format!(
                "[emperor] unloyal bad behaving vassal found: {name} throttling it..."
            )));
        }
        lines
    }

    /// Forgets a name (it became loyal).
    pub fn remove(&mut self, id: &[u8]) {
        self.entries.retain(|e| e.id != id);
    }

    /// SIGURG.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// `None` when `id` may be spawned now, else the instant it may.
    pub fn blocked_until(&self, id: &[u8], now: Instant) -> Option<Instant> {
        let e = self.entries.iter().find(|e| e.id == id)?;
        let until = e.last_attempt + Duration::from_micros(e.throttle_us);
        (until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels_ms(throttle: u64, max: u64, deaths: usize) -> Vec<u64> {
        let mut b = Blacklist::default();
        let now = Instant::now();
        (0..deaths)
            .map(|_| {
                b.add(b"a.ini", throttle, max, now, 0);
                b.entries()[0].throttle_us / US_PER_MS
            })
            .collect()
    }

    #[test]
    fn levels_follow_uwsgi() {
        // Spec §1.8.e: default throttle, then +1000 ms per death.
        assert_eq!(levels_ms(1000, 180_000, 5), vec![1, 1001, 2001, 3001, 4001]);
        // Spec test 13: the saw-tooth with 500/2000 (the first level shows 0).
        assert_eq!(
            levels_ms(500, 2000, 9),
            vec![0, 500, 1000, 1500, 2000, 1000, 1500, 2000, 1000]
        );
    }

    #[test]
    fn lines_and_gating() {
        let mut b = Blacklist::default();
        let t0 = Instant::now();
        assert!(b.add(b"c.ini", 1000, 180_000, t0, 0).is_empty());
        assert_eq!(
            b.blocked_until(b"c.ini", t0),
            Some(t0 + Duration::from_millis(1))
        );
        assert!(b.add(b"c.ini", 1000, 180_000, t0, 0).is_empty());
        let third = b.add(b"c.ini", 1000, 180_000, t0, 0);
        assert_eq!(
            third,
            vec![Line::Verbose(
                "[emperor] unloyal bad behaving vassal found: c.ini throttling it...".into()
            )]
        );
        assert_eq!(b.blocked_until(b"c.ini", t0 + Duration::from_secs(3)), None);
        assert!(b.blocked_until(b"other.ini", t0).is_none());
        let mut m = Blacklist::default();
        let lines: Vec<Line> = (0..6)
            .flat_map(|_| m.add(b"m.ini", 500, 2000, t0, 0))
            .collect();
        assert!(lines.contains(&Line::Verbose(
            "[emperor] maximum throttle level for vassal m.ini reached !!!".into()
        )));
        b.remove(b"c.ini");
        assert!(b.entries().is_empty());
        m.clear();
        assert!(m.entries().is_empty());
    }
}
