//! The response side of an exchange: reading the backend's head to learn
//! its framing, the edits routing asks for, passing the body on (counted,
//! chunk-tracked, re-chunked or until close) and the end of the response.

use super::*;

impl Proxy {
    pub(super) fn read_backend(
        &mut self,
        c: &mut ClientSide<'_>,
        sh: &mut Shared<'_>,
    ) -> ProxyStep {
        if self.backend_quiet
            || matches!(self.resp, Resp::Done)
            || c.out.pending() >= super::super::HIGH_WATER
        {
            return ProxyStep::Idle;
        }
        let Some(backend) = self.backend.as_mut() else {
            return ProxyStep::Idle;
        };
        self.rbuf.clear();
        let read = read_some_detailed(backend, &mut self.rbuf, sh.cfg.buffer_size);
        self.backend_quiet = read.drained && !self.backend_hup;
        match (read.outcome, read.reset) {
            (ReadOutcome::WouldBlock, _) => ProxyStep::Idle,
            (ReadOutcome::Data, _) => {
                let data = std::mem::take(&mut self.rbuf);
                let step = self.absorb(&data, c, sh);
                self.rbuf = data;
                step
            }
            // The worker closed the kept connection without reading the
            // request: it goes again on a new one.
            (ReadOutcome::Closed, true) if self.may_retry() => self.retry_fresh(c.token, sh),
            (ReadOutcome::Closed, _) => self.backend_closed(c),
        }
    }

    /// Handles response bytes from the backend.
    fn absorb(&mut self, data: &[u8], c: &mut ClientSide<'_>, sh: &mut Shared<'_>) -> ProxyStep {
        match &mut self.resp {
            Resp::Head(buf) => {
                buf.extend_from_slice(data);
                let buf = std::mem::take(buf);
                self.absorb_head(buf, c, sh)
            }
            Resp::Body(_) => self.absorb_body(data, c),
            Resp::Done => ProxyStep::Idle,
        }
    }

    /// Reads heads until a final one: interim (1xx) heads are passed on,
    /// except the backend's `100 Continue` after the router's own.
    fn absorb_head(
        &mut self,
        mut buf: Vec<u8>,
        c: &mut ClientSide<'_>,
        sh: &mut Shared<'_>,
    ) -> ProxyStep {
        loop {
            let head = match parse_backend_head(&buf) {
                HeadParse::Incomplete if buf.len() > MAX_RESPONSE_HEAD => {
                    return self.bad_response("response head too large");
                }
                HeadParse::Incomplete => {
                    self.resp = Resp::Head(buf);
                    return ProxyStep::Progress;
                }
                HeadParse::Invalid(why) => return self.bad_response(&why),
                HeadParse::Complete(h) => h,
            };
            let rest = buf.split_off(head.head_len);
            if head.is_interim() {
                let ours = head.status == 100 && self.sent_continue;
                if !ours && !self.req.suppress_head {
                    c.out.push(&buf);
                }
                buf = rest;
                continue;
            }
            self.status = head.status;
            self.response_started = true;
            if head.status == 101 {
                if !self.req.suppress_head {
                    c.out.push(&head.render(&self.req.ops, &[]));
                }
                c.out.push(&rest);
                self.resp = Resp::Done;
                return ProxyStep::Upgrade;
            }
            return self.start_body(head, rest, c, sh);
        }
    }

    /// Decides the framing toward the client, writes the head, then the
    /// body bytes that came with it.
    fn start_body(
        &mut self,
        mut head: BackendHead,
        rest: Vec<u8>,
        c: &mut ClientSide<'_>,
        sh: &mut Shared<'_>,
    ) -> ProxyStep {
        let worker_keeps = self.keeping.mark != Mark::None && head.keep;
        if worker_keeps {
            head.remove_keep_line();
        }
        let ops = super::super::conn::response_ops(&self.req, head.status, sh);
        let framing = head.framing(self.req.head_method);
        let client_keeps = self.req.keep_alive && head.http11 && !head.connection_close;
        let mut extra: Vec<&[u8]> = Vec::new();
        let out = match framing {
            Framing::None => None,
            Framing::Length(n) => Some(BodyOut::Length(n)),
            Framing::Chunked => Some(BodyOut::Chunked(ChunkedDecoder::default())),
            Framing::UntilClose if client_keeps && sh.cfg.auto_chunked => {
                extra.push(b"Transfer-Encoding: chunked");
                Some(BodyOut::AutoChunk)
            }
            Framing::UntilClose => Some(BodyOut::UntilClose),
        };
        self.keepable =
            client_keeps && !matches!(out, Some(BodyOut::UntilClose)) && !self.req.suppress_head;
        let will_close = !self.keepable || sh.draining;
        if will_close && self.req.wanted_keep_alive && head.http11 && !head.has_connection {
            extra.push(b"Connection: close");
        }
        if !self.req.suppress_head {
            c.out.push(&head.render(&ops, &extra));
        }
        match out {
            None => {
                self.resp = Resp::Done;
                self.keeping.overrun = !rest.is_empty();
                self.keeping.keeps = worker_keeps;
                ProxyStep::Finished { keep: self.keep() }
            }
            Some(body) => {
                self.keeping.keeps = worker_keeps;
                self.resp = Resp::Body(body);
                if rest.is_empty() {
                    ProxyStep::Progress
                } else {
                    self.absorb_body(&rest, c)
                }
            }
        }
    }

    fn absorb_body(&mut self, data: &[u8], c: &mut ClientSide<'_>) -> ProxyStep {
        let Resp::Body(body) = &mut self.resp else {
            return ProxyStep::Idle;
        };
        let done = match body {
            BodyOut::Length(remaining) => {
                let n = data
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                c.out.push(&data[..n]);
                *remaining -= n as u64;
                self.keeping.overrun |= n < data.len();
                *remaining == 0
            }
            BodyOut::UntilClose => {
                c.out.push(data);
                false
            }
            BodyOut::AutoChunk => {
                c.out.push(format!("{:X}\r\n", data.len()).as_bytes());
                c.out.push(data);
                c.out.push(b"\r\n");
                false
            }
            BodyOut::Chunked(decoder) => {
                // Bytes are passed on as they are; the decoder only finds
                // the end. A size line split across reads is carried over.
                let mut input = std::mem::take(&mut self.chunk_carry);
                input.extend_from_slice(data);
                let mut pos = 0;
                let ended = loop {
                    match decoder.decode(&input[pos..]) {
                        Ok((n, Chunk::End)) => break Some(pos + n),
                        Ok((n, Chunk::Data(_))) => pos += n,
                        Ok((n, Chunk::Incomplete)) => {
                            pos += n;
                            break None;
                        }
                        Err(e) => {
                            log(&format!(
                                "[uwsgi-http] invalid chunked response from {}: {e}",
                                self.pick.as_ref().map_or("", |p| p.name.as_str())
                            ));
                            c.out.push(&input[..pos]);
                            self.resp = Resp::Done;
                            return ProxyStep::Finished { keep: false };
                        }
                    }
                };
                match ended {
                    Some(end) => {
                        c.out.push(&input[..end]);
                        self.keeping.overrun |= end < input.len();
                        true
                    }
                    None => {
                        c.out.push(&input[..pos]);
                        self.chunk_carry = input.split_off(pos);
                        false
                    }
                }
            }
        };
        if done {
            self.resp = Resp::Done;
            return ProxyStep::Finished { keep: self.keep() };
        }
        ProxyStep::Progress
    }

    /// The connection may serve another request: the response allowed it
    /// and the whole request body went to the backend.
    fn keep(&self) -> bool {
        self.keepable && self.body.is_done() && !self.body_abandoned
    }

    fn backend_closed(&mut self, c: &mut ClientSide<'_>) -> ProxyStep {
        self.keeping.keeps = false;
        match &self.resp {
            Resp::Head(buf) if buf.is_empty() => {
                self.session_log("closed the connection without a response");
                ProxyStep::Failed(502)
            }
            Resp::Head(_) => self.bad_response("connection closed in the response head"),
            Resp::Body(BodyOut::UntilClose) => {
                self.resp = Resp::Done;
                ProxyStep::Finished { keep: false }
            }
            Resp::Body(BodyOut::AutoChunk) => {
                c.out.push(b"0\r\n\r\n");
                self.resp = Resp::Done;
                ProxyStep::Finished { keep: self.keep() }
            }
            Resp::Body(_) => {
                self.session_log("closed the connection in the middle of the response");
                self.resp = Resp::Done;
                ProxyStep::Finished { keep: false }
            }
            Resp::Done => ProxyStep::Idle,
        }
    }

    fn bad_response(&mut self, why: &str) -> ProxyStep {
        self.keeping.keeps = false;
        self.session_log(&format!("sent an invalid response: {why}"));
        self.resp = Resp::Done;
        if self.response_started {
            ProxyStep::Finished { keep: false }
        } else {
            ProxyStep::Failed(502)
        }
    }

    /// `[uwsgi-http key: K client_addr: A client_port: P] backend "X" ...`
    fn session_log(&self, what: &str) {
        log(&format!(
            "[uwsgi-http key: {} client_addr: {} client_port: {}] backend \"{}\" {what}",
            self.req.key,
            self.req.client_addr,
            self.req.client_port,
            self.backend_name()
        ));
    }
}
