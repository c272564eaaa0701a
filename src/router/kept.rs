//! Kept backend connections and the workers behind them.
//!
//! A ruwsgi worker keeps a connection the router marked (see
//! `protocol::uwsgi::KEEP_HEADER`) and names itself in that header: one
//! worker thread, which serves its kept connections one request at a
//! time. A client connection reuses its kept backend connection for its
//! next request, so that request waits for the same worker thread. When
//! that thread is busy with a slow request (nothing completed for
//! [`STUCK_AFTER`] while requests wait on it), the router sends the
//! request on a new connection instead, which any idle worker may accept,
//! as under uWSGI: a slow page never holds up the fast ones behind it for
//! longer than that.
//!
//! Kept connections hold descriptors while their clients are idle, so
//! there are at most a quarter of the descriptor limit of them: past that,
//! backend connections close after their response as before, and the
//! router never runs out of descriptors for new clients and backends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a worker thread with requests waiting on it may complete
/// nothing before its kept connections stop being reused.
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(20);

/// Workers remembered before the idle ones are forgotten (pids change as
/// workers are respawned).
const MAX_WORKERS: usize = 4096;

#[derive(Debug)]
struct Load {
    /// Requests sent on kept connections and not answered yet.
    waiting: u32,
    /// The last completion, or when requests started waiting.
    since: Instant,
}

/// What the router knows of each worker thread, by the name it gives.
#[derive(Debug)]
pub(crate) struct Loads {
    map: HashMap<Box<[u8]>, Load>,
    /// Kept connections now, and the most there may be.
    kept: usize,
    max_kept: usize,
}

impl Default for Loads {
    fn default() -> Loads {
        let limit = crate::sys::process::descriptor_limit().unwrap_or(1 << 20);
        Loads::with_room(usize::try_from(limit / 4).unwrap_or(usize::MAX))
    }
}

/// [`Loads`] as the loop shares it (one thread).
pub(crate) type SharedLoads = Rc<RefCell<Loads>>;

impl Loads {
    pub(crate) fn with_room(max_kept: usize) -> Loads {
        Loads {
            map: HashMap::new(),
            kept: 0,
            max_kept,
        }
    }

    /// Requests wait on `worker` and it has completed none for
    /// [`STUCK_AFTER`].
    pub(crate) fn stuck(&self, worker: &[u8], now: Instant) -> bool {
        self.map
            .get(worker)
            .is_some_and(|l| l.waiting > 0 && now.duration_since(l.since) > STUCK_AFTER)
    }

    /// A response from `worker` completed.
    pub(crate) fn done(&mut self, worker: &[u8], now: Instant) {
        if let Some(l) = self.map.get_mut(worker) {
            l.since = now;
        } else {
            if self.map.len() >= MAX_WORKERS {
                self.map.retain(|_, l| l.waiting > 0);
            }
            self.map.insert(
                worker.into(),
                Load {
                    waiting: 0,
                    since: now,
                },
            );
        }
    }
}

/// A kept connection, counted while it lives; `None` when there are as
/// many as there may be.
#[derive(Debug)]
pub(crate) struct Slot {
    loads: SharedLoads,
}

impl Slot {
    pub(crate) fn claim(loads: &SharedLoads) -> Option<Slot> {
        let mut l = loads.borrow_mut();
        if l.kept >= l.max_kept {
            return None;
        }
        l.kept += 1;
        Some(Slot {
            loads: loads.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut l = self.loads.borrow_mut();
        l.kept = l.kept.saturating_sub(1);
    }
}

/// A request waiting on a worker's kept connection; counted while it
/// lives.
#[derive(Debug)]
pub(crate) struct Waiting {
    loads: SharedLoads,
    worker: Box<[u8]>,
}

impl Waiting {
    pub(crate) fn start(loads: &SharedLoads, worker: &[u8], now: Instant) -> Waiting {
        let mut l = loads.borrow_mut();
        let load = l.map.entry(worker.into()).or_insert(Load {
            waiting: 0,
            since: now,
        });
        if load.waiting == 0 {
            load.since = now;
        }
        load.waiting += 1;
        Waiting {
            loads: loads.clone(),
            worker: worker.into(),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(l) = self.loads.borrow_mut().map.get_mut(&self.worker) {
            l.waiting = l.waiting.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_connections_are_capped() {
        let loads: SharedLoads = Rc::new(RefCell::new(Loads::with_room(2)));
        let a = Slot::claim(&loads).expect("first");
        let b = Slot::claim(&loads).expect("second");
        assert!(Slot::claim(&loads).is_none(), "over the cap");
        drop(a);
        let c = Slot::claim(&loads).expect("room again");
        drop((b, c));
        assert_eq!(loads.borrow().kept, 0);
    }

    #[test]
    fn a_worker_is_stuck_only_while_requests_wait_without_completions() {
        let loads: SharedLoads = Rc::default();
        let t0 = Instant::now();
        let later = t0 + STUCK_AFTER * 2;
        // Unknown, or idle for long: not stuck.
        assert!(!loads.borrow().stuck(b"w", later));
        loads.borrow_mut().done(b"w", t0);
        assert!(!loads.borrow().stuck(b"w", later));
        // A request waits from `later`; nothing completes.
        let first = Waiting::start(&loads, b"w", later);
        assert!(!loads.borrow().stuck(b"w", later + STUCK_AFTER / 2));
        assert!(loads.borrow().stuck(b"w", later + STUCK_AFTER * 2));
        // Completions keep it fresh while requests keep waiting.
        let second = Waiting::start(&loads, b"w", later);
        loads.borrow_mut().done(b"w", later + STUCK_AFTER * 2);
        drop(first);
        assert!(!loads.borrow().stuck(b"w", later + STUCK_AFTER * 2));
        assert!(loads.borrow().stuck(b"w", later + STUCK_AFTER * 4));
        drop(second);
        assert!(!loads.borrow().stuck(b"w", later + STUCK_AFTER * 9));
        // Other workers are unaffected.
        let _w = Waiting::start(&loads, b"v", t0);
        assert!(!loads.borrow().stuck(b"w", later));
    }
}
