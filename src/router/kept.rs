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
#[derive(Debug, Default)]
pub(crate) struct Loads {
    map: HashMap<Box<[u8]>, Load>,
}

/// [`Loads`] as the loop shares it (one thread).
pub(crate) type SharedLoads = Rc<RefCell<Loads>>;

impl Loads {
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
