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
//! Kept connections wait here between their client's requests, and hold
//! descriptors while they wait, so at most a quarter of the descriptor
//! limit of them wait at a time: keeping one more closes the one unused
//! the longest (an idle client's), so active clients keep theirs and the
//! router never runs out of descriptors for new clients and backends.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::io::Stream;

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
/// A backend connection a ruwsgi worker keeps open between requests.
#[derive(Debug)]
pub(crate) struct Kept {
    /// The address it was opened to.
    pub name: String,
    /// Still registered under its client connection's backend token.
    pub stream: Stream,
    /// The worker thread behind it, as it names itself.
    pub worker: Box<[u8]>,
}

/// A kept connection waiting in [`Loads`].
#[derive(Debug)]
struct Idle {
    kept: Kept,
    /// Tells a stale entry of `order` from a live one.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct Loads {
    map: HashMap<Box<[u8]>, Load>,
    /// Kept connections waiting for their client's next request.
    idle: Slab<Idle>,
    /// `idle` keys, the longest unused first (with stale entries).
    order: VecDeque<(usize, u64)>,
    generation: u64,
    max_idle: usize,
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
    pub(crate) fn with_room(max_idle: usize) -> Loads {
        Loads {
            map: HashMap::new(),
            idle: Slab::new(),
            order: VecDeque::new(),
            generation: 0,
            max_idle: max_idle.max(1),
        }
    }

    /// Keeps `kept` for its client's next request; when there are as many
    /// as there may be, the one unused the longest is closed first.
    pub(crate) fn keep(loads: &SharedLoads, kept: Kept) -> KeptHandle {
        let mut l = loads.borrow_mut();
        while l.idle.len() >= l.max_idle {
            let Some((key, generation)) = l.order.pop_front() else {
                break;
            };
            if l.idle.get(key).is_some_and(|w| w.generation == generation) {
                l.idle.remove(key);
            }
        }
        if l.order.len() > 2 * l.idle.len() + 64 {
            let Loads { idle, order, .. } = &mut *l;
            order.retain(|&(k, g)| idle.get(k).is_some_and(|w| w.generation == g));
        }
        l.generation += 1;
        let generation = l.generation;
        let key = l.idle.insert(Idle { kept, generation });
        l.order.push_back((key, generation));
        KeptHandle {
            loads: loads.clone(),
            key,
            generation,
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

/// A client connection's claim on its kept backend connection; dropping
/// it closes the connection if it is still waiting.
#[derive(Debug)]
pub(crate) struct KeptHandle {
    loads: SharedLoads,
    key: usize,
    generation: u64,
}

impl KeptHandle {
    /// The connection, unless it was closed to make room.
    pub(crate) fn take(self) -> Option<Kept> {
        self.remove()
    }

    /// The address it goes to, unless it was closed to make room.
    #[cfg(test)]
    pub(crate) fn name(&self) -> Option<String> {
        let l = self.loads.borrow();
        l.idle
            .get(self.key)
            .filter(|w| w.generation == self.generation)
            .map(|w| w.kept.name.clone())
    }

    fn remove(&self) -> Option<Kept> {
        let mut l = self.loads.borrow_mut();
        let live = l
            .idle
            .get(self.key)
            .is_some_and(|w| w.generation == self.generation);
        live.then(|| l.idle.remove(self.key).kept)
    }
}

impl Drop for KeptHandle {
    fn drop(&mut self) {
        drop(self.remove());
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

    fn kept(name: &str) -> Kept {
        let (a, _b) = mio::net::UnixStream::pair().expect("socketpair");
        Kept {
            name: name.into(),
            stream: Stream::Unix(a),
            worker: b"w".to_vec().into_boxed_slice(),
        }
    }

    #[test]
    fn keeping_more_than_the_room_closes_the_longest_unused() {
        let loads: SharedLoads = Rc::new(RefCell::new(Loads::with_room(2)));
        let a = Loads::keep(&loads, kept("a"));
        let b = Loads::keep(&loads, kept("b"));
        // `a` is used and kept again: now `b` is the longest unused.
        let a = Loads::keep(&loads, a.take().expect("a waits"));
        let c = Loads::keep(&loads, kept("c"));
        assert_eq!(b.name(), None, "b should have been closed");
        assert!(b.take().is_none());
        assert_eq!(a.name().as_deref(), Some("a"));
        assert_eq!(c.name().as_deref(), Some("c"));
        // A handle dropped closes its connection and frees its room.
        drop(c);
        assert_eq!(loads.borrow().idle.len(), 1);
        // Many keeps and takes do not grow the order without bound.
        let mut h = a;
        for _ in 0..1000 {
            h = Loads::keep(&loads, h.take().expect("waits"));
        }
        assert!(loads.borrow().order.len() < 200);
        drop(h);
        assert_eq!(loads.borrow().idle.len(), 0);
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
