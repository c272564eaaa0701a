//! Idle keep-alive connections of one worker thread (`http-socket`).
//!
//! A connection whose last response allows another request is parked here
//! rather than waited on: the thread goes back to its poll, where parked
//! sockets sit beside the listening ones, and serves whichever client
//! speaks first. So one worker takes turns among many keep-alive clients,
//! and a quiet client never holds a worker while others wait in the accept
//! queue. A parked connection closes after `socket-timeout` idle, the
//! oldest first when there are too many (or descriptors run out), and all
//! of them when the thread stops.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::body::Wire;

/// Tokens at and above this one are parked connections (listeners use
/// their small indices, the wake pipe `usize::MAX`).
const FIRST_TOKEN: usize = 1 << 24;

/// Parked connections per thread before the oldest idle one is closed.
pub(crate) const MAX_PARKED: usize = 1024;

struct Slot {
    /// `None` while the thread is serving it.
    wire: Option<Wire>,
    peer: String,
    /// Index of the listener that accepted it.
    listener: usize,
    since: Instant,
    /// In the ready queue.
    queued: bool,
}

/// A parked connection taken out to be served.
pub(crate) struct Taken {
    pub(crate) key: usize,
    pub(crate) wire: Wire,
    pub(crate) peer: String,
    pub(crate) listener: usize,
}

pub(crate) struct Parked {
    slots: Slab<Slot>,
    ready: VecDeque<usize>,
    /// `None`: no idle limit (`socket-timeout = 0`).
    idle_limit: Option<Duration>,
    max: usize,
}

impl Parked {
    pub(crate) fn new(idle_limit: Option<Duration>, max: usize) -> Parked {
        Parked {
            slots: Slab::new(),
            ready: VecDeque::new(),
            idle_limit,
            max: max.max(1),
        }
    }

    /// The slot a poll token names, if it is a parked connection's.
    pub(crate) fn key_of(token: Token) -> Option<usize> {
        token
            .0
            .checked_sub(FIRST_TOKEN)
            .filter(|_| token.0 != usize::MAX)
    }

    /// Parks a new connection (its socket joins the poll).
    pub(crate) fn park(
        &mut self,
        registry: &Registry,
        mut wire: Wire,
        peer: String,
        listener: usize,
    ) {
        wire.release_idle_buffer();
        if self.slots.len() >= self.max && !self.evict_oldest() {
            return;
        }
        let entry = self.slots.vacant_entry();
        let fd = wire.stream.raw_fd();
        if registry
            .register(
                &mut SourceFd(&fd),
                Token(FIRST_TOKEN + entry.key()),
                Interest::READABLE,
            )
            .is_err()
        {
            // Cannot watch it: close it (the client opens another).
            return;
        }
        entry.insert(Slot {
            wire: Some(wire),
            peer,
            listener,
            since: Instant::now(),
            queued: false,
        });
    }

    /// The poll says the client sent something (or closed).
    pub(crate) fn mark_ready(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(key) {
            if !slot.queued {
                slot.queued = true;
                self.ready.push_back(key);
            }
        }
    }

    pub(crate) fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// The next connection the poll said was readable.
    pub(crate) fn take_ready(&mut self) -> Option<Taken> {
        while let Some(key) = self.ready.pop_front() {
            let Some(slot) = self.slots.get_mut(key) else {
                continue;
            };
            slot.queued = false;
            let Some(wire) = slot.wire.take() else {
                continue;
            };
            return Some(Taken {
                key,
                wire,
                peer: std::mem::take(&mut slot.peer),
                listener: slot.listener,
            });
        }
        None
    }

    /// Every idle connection, taken out (the thread is stopping).
    pub(crate) fn take_all(&mut self) -> Vec<Taken> {
        self.ready.clear();
        self.slots
            .drain()
            .filter_map(|slot| {
                Some(Taken {
                    key: 0,
                    wire: slot.wire?,
                    peer: slot.peer,
                    listener: slot.listener,
                })
            })
            .collect()
    }

    /// A served connection waits again, still registered under its token.
    pub(crate) fn put_back(&mut self, key: usize, mut wire: Wire, peer: String) {
        wire.release_idle_buffer();
        if let Some(slot) = self.slots.get_mut(key) {
            slot.wire = Some(wire);
            slot.peer = peer;
            slot.since = Instant::now();
        }
    }

    /// Closes a connection (closing the socket takes it out of the poll).
    pub(crate) fn remove(&mut self, key: usize) {
        if self.slots.contains(key) {
            self.slots.remove(key);
        }
    }

    /// Closes the connection idle the longest; false when none is idle.
    pub(crate) fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .slots
            .iter()
            .filter(|(_, s)| s.wire.is_some() && !s.queued)
            .min_by_key(|(_, s)| s.since)
            .map(|(k, _)| k);
        match oldest {
            Some(k) => {
                self.slots.remove(k);
                true
            }
            None => false,
        }
    }

    /// Closes the connections idle longer than the limit.
    pub(crate) fn expire(&mut self, now: Instant) {
        let Some(limit) = self.idle_limit else {
            return;
        };
        self.slots
            .retain(|_, s| s.wire.is_none() || s.queued || now.duration_since(s.since) < limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_keys() {
        assert_eq!(Parked::key_of(Token(0)), None);
        assert_eq!(Parked::key_of(Token(3)), None);
        assert_eq!(Parked::key_of(Token(usize::MAX)), None);
        assert_eq!(Parked::key_of(Token(FIRST_TOKEN)), Some(0));
        assert_eq!(Parked::key_of(Token(FIRST_TOKEN + 7)), Some(7));
    }
}
