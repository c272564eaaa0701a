//! After a `101 Switching Protocols` (WebSocket and other upgrades): the
//! bytes are spliced both ways until the backend closes, with the same
//! backpressure as everywhere else.

use super::*;

/// After a 101: bytes both ways.
#[derive(Debug)]
pub(super) struct Tunnel {
    pub(super) backend: Stream,
    pub(super) to_backend: Outbox,
    pub(super) backend_closed: bool,
    pub(super) backend_shut: bool,
}

impl Conn {
    pub(super) fn step_tunnel(&mut self, mut t: Box<Tunnel>, sh: &mut Shared<'_>) -> (Stage, Step) {
        let mut progress = false;
        if !self.inbuf.is_empty() && t.to_backend.pending() < HIGH_WATER {
            t.to_backend.push(&self.inbuf);
            self.inbuf.clear();
            progress = true;
        }
        match t.to_backend.flush_to(&mut t.backend) {
            Flush::Broken => return (Stage::Tunnel(t), Step::Close),
            Flush::Progress => progress = true,
            Flush::Idle => {}
        }
        if self.client_eof && t.to_backend.is_empty() && !t.backend_shut {
            t.backend.shutdown_write();
            t.backend_shut = true;
        }
        if !self.client_eof && self.inbuf.is_empty() && t.to_backend.pending() < HIGH_WATER {
            match read_some(&mut self.client, &mut self.inbuf, sh.cfg.buffer_size) {
                ReadOutcome::Data => progress = true,
                ReadOutcome::Closed => {
                    self.client_eof = true;
                    progress = true;
                }
                ReadOutcome::WouldBlock => {}
            }
        }
        if !t.backend_closed && self.out.pending() < HIGH_WATER {
            let mut buf = Vec::new();
            match read_some(&mut t.backend, &mut buf, sh.cfg.buffer_size) {
                ReadOutcome::Data => {
                    self.out.push(&buf);
                    progress = true;
                }
                ReadOutcome::Closed => {
                    t.backend_closed = true;
                    progress = true;
                }
                ReadOutcome::WouldBlock => {}
            }
        }
        if t.backend_closed && self.out.is_empty() {
            return (Stage::Tunnel(t), Step::Close);
        }
        if progress {
            self.deadline = Some(sh.now + sh.cfg.timeout);
            (Stage::Tunnel(t), Step::Progress)
        } else {
            (Stage::Tunnel(t), Step::Idle)
        }
    }
}
