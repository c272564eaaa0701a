//! Kept backend connections and the requests in flight behind them.
//!
//! A ruwsgi worker keeps a connection the router marked (see
//! `protocol::uwsgi::KEEP_HEADER`), and serves its kept connections one
//! request at a time. A client connection reuses its kept backend
//! connection for its next request, so that request goes to the same
//! worker thread, which may be busy with a slow request it took from any
//! client. The router cannot see which worker took which new connection,
//! so it watches each backend address as a whole: while a request to it
//! has been in flight for longer than [`STUCK_AFTER`] (a slow page, a slow
//! upload), kept connections to that address are not reused and each
//! request goes on a new connection, which any idle worker may accept, as
//! under uWSGI. A slow page never holds up the fast ones behind it for
//! longer than that.
//!
//! With `http-processes`, each gateway process also publishes its oldest
//! request in flight per address on a [`Board`] the master shares with
//! all of them, and counts the others' too: a worker busy with another
//! gateway's slow request would otherwise hold up a kept connection.
//!
//! Kept connections wait here between their client's requests, and hold
//! descriptors while they wait, so at most a quarter of the descriptor
//! limit of them wait at a time: keeping one more closes the one unused
//! the longest (an idle client's), so active clients keep theirs and the
//! router never runs out of descriptors for new clients and backends.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use slab::Slab;

use super::io::Stream;

/// How long a request to an address may be in flight before kept
/// connections to that address stop being reused.
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(20);

/// A backend connection a ruwsgi worker keeps open between requests.
#[derive(Debug)]
pub(crate) struct Kept {
    /// The address it was opened to.
    pub name: String,
    /// Still registered under its client connection's backend token.
    pub stream: Stream,
}

/// A kept connection waiting in [`Loads`].
#[derive(Debug)]
struct Idle {
    kept: Kept,
    /// Tells a stale entry of `order` from a live one.
    generation: u64,
}

/// Address buckets per gateway on a [`Board`].
pub const BOARD_BUCKETS: usize = 256;

/// The board's memory, mapped shared by the master before it forks the
/// gateways (`http-processes` > 1): [`BOARD_BUCKETS`] slots per gateway.
static BOARD: OnceLock<&'static [AtomicU64]> = OnceLock::new();
/// This gateway's row on it (its number less one).
static ROW: OnceLock<usize> = OnceLock::new();

/// Installs the board's memory, in the master, before any gateway forks.
pub fn share_board(slots: &'static [AtomicU64]) {
    let _ = BOARD.set(slots);
}

/// Tells a gateway process its row (in the child, before its loop).
pub fn set_board_row(row: usize) {
    let _ = ROW.set(row);
}

/// The oldest request in flight from each gateway process to the
/// addresses of each bucket: a start on CLOCK_MONOTONIC in nanoseconds
/// plus one, or 0 when none. Each gateway writes its own row only.
#[derive(Debug)]
struct Board {
    slots: &'static [AtomicU64],
    row: usize,
    /// An instant and its CLOCK_MONOTONIC reading: `Instant` is that
    /// clock, so other instants convert through it.
    anchor: (Instant, u64),
}

impl Board {
    /// This process's board, when it is one of several gateways.
    fn joined() -> Option<Board> {
        let slots = *BOARD.get()?;
        let row = *ROW.get()?;
        let anchor = (Instant::now(), crate::sys::process::monotonic_nanos());
        Board::new(slots, row, anchor)
    }

    /// Clears the row (a respawned gateway's predecessor may have left
    /// its requests on it).
    fn new(slots: &'static [AtomicU64], row: usize, anchor: (Instant, u64)) -> Option<Board> {
        let mine = slots.get(row * BOARD_BUCKETS..(row + 1) * BOARD_BUCKETS)?;
        mine.iter().for_each(|s| s.store(0, Ordering::Relaxed));
        Some(Board { slots, row, anchor })
    }

    fn nanos(&self, t: Instant) -> u64 {
        let (at, nanos) = self.anchor;
        if t >= at {
            nanos.saturating_add(t.duration_since(at).as_nanos() as u64)
        } else {
            nanos.saturating_sub(at.duration_since(t).as_nanos() as u64)
        }
    }

    fn publish(&self, bucket: usize, oldest: Option<Instant>) {
        let value = oldest.map_or(0, |t| self.nanos(t).saturating_add(1));
        self.slots[self.row * BOARD_BUCKETS + bucket].store(value, Ordering::Relaxed);
    }

    /// Another gateway has had a request to this bucket in flight too long.
    fn others_slow(&self, bucket: usize, now: Instant) -> bool {
        let now = self.nanos(now);
        let limit = STUCK_AFTER.as_nanos() as u64;
        let rows = self.slots.len() / BOARD_BUCKETS;
        (0..rows).filter(|&r| r != self.row).any(|r| {
            let start = self.slots[r * BOARD_BUCKETS + bucket].load(Ordering::Relaxed);
            start != 0 && now.saturating_sub(start - 1) > limit
        })
    }
}

/// The board bucket of an address (FNV-1a: the same in every process).
fn bucket(addr: &str) -> usize {
    let hash = addr.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % BOARD_BUCKETS as u64) as usize
}

/// The kept connections and the requests in flight, for the whole loop.
#[derive(Debug)]
pub(crate) struct Loads {
    /// Requests in flight per backend address: (start, a unique number).
    flights: HashMap<String, BTreeSet<(Instant, u64)>>,
    /// The same per board bucket, when there is a board.
    bucket_flights: HashMap<usize, BTreeSet<(Instant, u64)>>,
    board: Option<Board>,
    /// The last unique number handed out (flights and kept generations).
    sequence: u64,
    /// Kept connections waiting for their client's next request.
    idle: Slab<Idle>,
    /// `idle` keys, the longest unused first (with stale entries).
    order: VecDeque<(usize, u64)>,
    max_idle: usize,
}

impl Default for Loads {
    fn default() -> Loads {
        let limit = crate::sys::process::descriptor_limit().unwrap_or(1 << 20);
        let mut loads = Loads::with_room(usize::try_from(limit / 4).unwrap_or(usize::MAX));
        loads.board = Board::joined();
        loads
    }
}

/// [`Loads`] as the loop shares it (one thread).
pub(crate) type SharedLoads = Rc<RefCell<Loads>>;

impl Loads {
    pub(crate) fn with_room(max_idle: usize) -> Loads {
        Loads {
            flights: HashMap::new(),
            bucket_flights: HashMap::new(),
            board: None,
            sequence: 0,
            idle: Slab::new(),
            order: VecDeque::new(),
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
        l.sequence += 1;
        let generation = l.sequence;
        let key = l.idle.insert(Idle { kept, generation });
        l.order.push_back((key, generation));
        KeptHandle {
            loads: loads.clone(),
            key,
            generation,
        }
    }

    /// A request to `addr` has been in flight for longer than
    /// [`STUCK_AFTER`]: some worker behind it is busy with it.
    pub(crate) fn slow(&self, addr: &str, now: Instant) -> bool {
        let here = self
            .flights
            .get(addr)
            .and_then(BTreeSet::first)
            .is_some_and(|(t, _)| now.duration_since(*t) > STUCK_AFTER);
        here || self
            .board
            .as_ref()
            .is_some_and(|b| b.others_slow(bucket(addr), now))
    }

    /// Publishes this gateway's oldest request in flight to `addr`'s
    /// bucket after `change` (a start or an end) applied to its set.
    fn on_board(&mut self, addr: &str, change: impl FnOnce(&mut BTreeSet<(Instant, u64)>)) {
        let Some(board) = &self.board else {
            return;
        };
        let b = bucket(addr);
        let set = self.bucket_flights.entry(b).or_default();
        change(set);
        board.publish(b, set.first().map(|(t, _)| *t));
        if set.is_empty() {
            self.bucket_flights.remove(&b);
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

/// A request in flight to a backend address; counted while it lives.
#[derive(Debug)]
pub(crate) struct InFlight {
    loads: SharedLoads,
    addr: String,
    key: (Instant, u64),
}

impl InFlight {
    pub(crate) fn start(loads: &SharedLoads, addr: &str, now: Instant) -> InFlight {
        let mut l = loads.borrow_mut();
        l.sequence += 1;
        let key = (now, l.sequence);
        l.flights.entry(addr.to_string()).or_default().insert(key);
        l.on_board(addr, |set| {
            set.insert(key);
        });
        InFlight {
            loads: loads.clone(),
            addr: addr.to_string(),
            key,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut l = self.loads.borrow_mut();
        if let Some(set) = l.flights.get_mut(&self.addr) {
            set.remove(&self.key);
            if set.is_empty() {
                l.flights.remove(&self.addr);
            }
        }
        let key = self.key;
        l.on_board(&self.addr, |set| {
            set.remove(&key);
        });
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
    fn an_address_is_slow_while_a_request_to_it_is_in_flight_too_long() {
        let loads: SharedLoads = Rc::default();
        let t0 = Instant::now();
        assert!(!loads.borrow().slow("a", t0 + STUCK_AFTER * 9));
        let first = InFlight::start(&loads, "a", t0);
        let later = InFlight::start(&loads, "a", t0 + STUCK_AFTER);
        assert!(!loads.borrow().slow("a", t0 + STUCK_AFTER / 2));
        assert!(loads.borrow().slow("a", t0 + STUCK_AFTER * 3 / 2));
        // Other addresses are unaffected.
        assert!(!loads.borrow().slow("b", t0 + STUCK_AFTER * 3));
        // The oldest one counts; when it ends, the next.
        drop(first);
        assert!(!loads.borrow().slow("a", t0 + STUCK_AFTER * 3 / 2));
        assert!(loads.borrow().slow("a", t0 + STUCK_AFTER * 5 / 2));
        drop(later);
        assert!(!loads.borrow().slow("a", t0 + STUCK_AFTER * 9));
        assert!(loads.borrow().flights.is_empty());
    }

    /// Two gateways on one board: each sees the other's slow request to an
    /// address (and only to that address's bucket), and a gateway that
    /// starts again clears what its predecessor left.
    #[test]
    fn gateways_see_each_others_slow_requests_on_the_board() {
        let slots: &'static [AtomicU64] = Box::leak(
            (0..2 * BOARD_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let t0 = Instant::now();
        let anchor = (t0, 1_000_000_000);
        let gateway = |row| {
            let mut l = Loads::with_room(8);
            l.board = Board::new(slots, row, anchor);
            Rc::new(RefCell::new(l))
        };
        let (one, two) = (gateway(0), gateway(1));
        let other = (0..)
            .map(|i| format!("b{i}"))
            .find(|a| bucket(a) != bucket("a"));
        let other = other.expect("an address in another bucket");
        let flight = InFlight::start(&two, "a", t0);
        assert!(!one.borrow().slow("a", t0 + STUCK_AFTER / 2));
        assert!(one.borrow().slow("a", t0 + STUCK_AFTER * 2));
        assert!(!one.borrow().slow(&other, t0 + STUCK_AFTER * 2));
        drop(flight);
        assert!(!one.borrow().slow("a", t0 + STUCK_AFTER * 2));
        // A gateway dies with a request in flight; its successor clears it.
        std::mem::forget(InFlight::start(&two, "a", t0));
        assert!(one.borrow().slow("a", t0 + STUCK_AFTER * 2));
        let _respawned = gateway(1);
        assert!(!one.borrow().slow("a", t0 + STUCK_AFTER * 2));
    }
}
