//! Starting a request once its head is in: the CGI variables, the routing
//! table, then a generated response, a file, or a backend exchange
//! (through the chunked-body spool when needed).

use super::*;

/// How the request reaches its backend.
#[derive(Debug, Clone)]
pub(super) enum Proto {
    Uwsgi {
        modifier1: u8,
        modifier2: u8,
    },
    Http {
        host: Option<Vec<u8>>,
        uri: Option<Vec<u8>>,
    },
}

/// A chunked body being spooled before the backend is contacted.
#[derive(Debug)]
pub(super) struct Spooling {
    pub(super) req: Request,
    spool: Spool,
    target: Target,
    proto: Proto,
}

impl Conn {
    /// A complete head is at the start of the input: route the request.
    pub(super) fn start_request(&mut self, head_len: usize, sh: &mut Shared<'_>) -> (Stage, Step) {
        let head = RequestHead::parse(&self.inbuf[..head_len]);
        self.inbuf.drain(..head_len);
        let key = match host_key(&head) {
            Ok(Some(host)) => String::from_utf8_lossy(host).into_owned(),
            Ok(None) => String::from_utf8_lossy(sh.server_name).into_owned(),
            Err(e) => return self.fail(400, &format!("invalid request: {e}"), None, sh),
        };
        let framing = match body_framing(&head) {
            Ok(f) => f,
            Err(e) => {
                return self.fail(e.status(), &format!("invalid request: {e}"), Some(&key), sh)
            }
        };
        let empty = Vec::new();
        let env = RouterEnv {
            server_name: sh.server_name,
            server_port: sh.server_ports.get(self.listener).unwrap_or(&empty),
            remote_addr: self.peer.addr.as_bytes(),
            remote_port: self.peer.port.as_bytes(),
            https: false,
            server_name_as_http_host: sh.cfg.server_name_as_http_host,
            extra: &sh.cfg.vars,
        };
        let mut vars = router_vars(&head, &env);
        let ev = if sh.cfg.routes.request.is_empty() {
            routing::Evaluation::default()
        } else {
            let ctx = Context {
                pid: sh.pid,
                ..Context::default()
            };
            routing::evaluate(&sh.cfg.routes.request, &vars, &ctx)
        };
        for line in &ev.logs {
            log(&String::from_utf8_lossy(line));
        }
        for dir in &ev.chdirs {
            if let Err(e) = std::env::set_current_dir(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir),
            ) {
                log(&format!(
                    "uwsgi_router_chdir_func()/chdir(): {}",
                    crate::router::io::strerror(&e)
                ));
                return (Stage::Closing(Closing::Flushing), Step::Progress);
            }
        }
        vars.extend(ev.vars.iter().cloned());
        let wanted = keep_alive(&head);
        let upgrade = head.header(b"upgrade").is_some();
        let keeps = matches!(
            sh.cfg.keepalive,
            crate::config::model_router::KeepAlive::On { .. }
        ) && wanted
            && !sh.draining
            && !sh.cfg.raw_body
            && ev.sent.is_empty();
        let req = Request {
            key,
            client_addr: self.peer.addr.clone(),
            client_port: self.peer.port.clone(),
            vars,
            protocol: head.protocol.clone(),
            head_method: head.method == b"HEAD",
            wanted_keep_alive: wanted,
            keep_alive: keeps && !upgrade,
            expect_continue: expects_continue(&head) && head.version == 1,
            ops: ev.headers.clone(),
            suppress_head: ev.disable_headers || !ev.sent.is_empty(),
            started: sh.now,
        };
        self.out.push(&ev.sent);
        let has_body = !matches!(framing, BodyFraming::None | BodyFraming::Length(0));
        let (target, proto) = match ev.outcome {
            Outcome::Close => return (Stage::Closing(Closing::Flushing), Step::Progress),
            Outcome::Respond(r) => {
                return (
                    Stage::Local(local::respond(r, req, has_body, sh)),
                    Step::Progress,
                );
            }
            Outcome::Static(path) => {
                let l = local::serve_file(&path, req, has_body, sh);
                return (Stage::Local(l), Step::Progress);
            }
            Outcome::Forward(f) => {
                let proto = match f.kind {
                    ForwardKind::Uwsgi {
                        modifier1,
                        modifier2,
                    } => Proto::Uwsgi {
                        modifier1,
                        modifier2,
                    },
                    ForwardKind::Http { host, uri } => Proto::Http { host, uri },
                };
                (
                    Target::Fixed(String::from_utf8_lossy(&f.addr).into_owned()),
                    proto,
                )
            }
            Outcome::Continue => (
                Target::Pool,
                Proto::Uwsgi {
                    modifier1: ev.modifier1.unwrap_or(sh.cfg.modifier1),
                    modifier2: ev.modifier2.unwrap_or(sh.cfg.modifier2),
                },
            ),
        };
        match framing {
            BodyFraming::Length(n)
                if req.expect_continue && sh.cfg.expect_limit.is_some_and(|l| n > l) =>
            {
                let key = req.key.clone();
                self.fail(
                    413,
                    &format!("request body of {n} bytes refused (http-manage-expect)"),
                    Some(&key),
                    sh,
                )
            }
            BodyFraming::Chunked => {
                if req.expect_continue {
                    self.out.push(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                self.deadline = Some(sh.now + sh.cfg.timeout);
                let spooling = Spooling {
                    req,
                    spool: Spool::default(),
                    target,
                    proto,
                };
                (Stage::Spooling(Box::new(spooling)), Step::Progress)
            }
            BodyFraming::Length(n) => {
                let body = if sh.cfg.raw_body {
                    BodyIn::Raw
                } else {
                    BodyIn::Length(n)
                };
                self.begin_proxy(req, target, proto, body, sh)
            }
            BodyFraming::None => {
                let body = if sh.cfg.raw_body || upgrade {
                    BodyIn::Raw
                } else {
                    BodyIn::None
                };
                self.begin_proxy(req, target, proto, body, sh)
            }
        }
    }

    /// Builds what the backend receives first and starts the exchange.
    fn begin_proxy(
        &mut self,
        req: Request,
        target: Target,
        proto: Proto,
        body: BodyIn,
        sh: &Shared<'_>,
    ) -> (Stage, Step) {
        let kind = match proto {
            Proto::Uwsgi { .. } => "uwsgi",
            Proto::Http { .. } => "http",
        };
        let bytes = match &proto {
            Proto::Uwsgi {
                modifier1,
                modifier2,
            } => match wire::uwsgi_packet(*modifier1, *modifier2, &req.vars, &[]) {
                Ok(p) => p,
                Err(e) => {
                    let key = req.key.clone();
                    return self.fail(
                        431,
                        &format!("request too large for a uwsgi packet: {e}"),
                        Some(&key),
                        sh,
                    );
                }
            },
            Proto::Http { host, uri } => {
                wire::http_request(&req.vars, host.as_deref(), uri.as_deref())
            }
        };
        self.deadline = Some(sh.now + sh.cfg.connect_timeout);
        // A kept backend connection serves the next request to the same
        // address when that request has no body (a failure before the
        // response can then be retried safely) and no request to that
        // address is taking long (a worker is busy with it: see
        // `router::kept`); otherwise it is closed.
        let kept = self.kept.take().and_then(|h| h.take()).filter(|k| {
            matches!(body, BodyIn::None)
                && matches!(proto, Proto::Uwsgi { .. })
                && match &target {
                    Target::Fixed(t) => *t == k.name,
                    Target::Pool => sh.pool.sticky_node() == Some(k.name.as_str()),
                }
                && !sh.loads.borrow().slow(&k.name, sh.now)
        });
        let body = match body {
            // Upgrades and raw mode: only after the 101 (or as it comes).
            BodyIn::Raw if !sh.cfg.raw_body => BodyIn::None,
            other => other,
        };
        let proxy = Proxy::new(req, target, bytes, body, kind);
        let proxy = match kept {
            Some(kept) => proxy.reuse(kept, sh),
            None => proxy,
        };
        (Stage::Proxy(Box::new(proxy)), Step::Progress)
    }

    pub(super) fn step_spool(
        &mut self,
        mut sp: Box<Spooling>,
        sh: &mut Shared<'_>,
    ) -> (Stage, Step) {
        if !self.inbuf.is_empty() {
            match sp.spool.feed(&self.inbuf) {
                Ok(Fed::Done(n)) => {
                    self.inbuf.drain(..n);
                    let Spooling {
                        mut req,
                        spool,
                        target,
                        proto,
                    } = *sp;
                    wire::dechunked_vars(&mut req.vars, spool.len());
                    return match spool.finish() {
                        Ok(reader) => {
                            self.begin_proxy(req, target, proto, BodyIn::Spooled(reader), sh)
                        }
                        Err(e) => self.fail(
                            500,
                            &format!("spooling the request body: {e}"),
                            Some(&req.key),
                            sh,
                        ),
                    };
                }
                Ok(Fed::More(n)) if n > 0 => {
                    self.inbuf.drain(..n);
                    return (Stage::Spooling(sp), Step::Progress);
                }
                Ok(Fed::More(_)) => {}
                Err(e) => {
                    let key = sp.req.key.clone();
                    return self.fail(
                        e.status(),
                        &format!("invalid request body: {e}"),
                        Some(&key),
                        sh,
                    );
                }
            }
        }
        if self.client_eof {
            return (Stage::Spooling(sp), Step::Close);
        }
        match read_some(&mut self.client, &mut self.inbuf, sh.cfg.buffer_size) {
            ReadOutcome::Data => {
                self.deadline = Some(sh.now + sh.cfg.timeout);
                (Stage::Spooling(sp), Step::Progress)
            }
            ReadOutcome::WouldBlock => (Stage::Spooling(sp), Step::Idle),
            ReadOutcome::Closed => {
                self.client_eof = true;
                (Stage::Spooling(sp), Step::Progress)
            }
        }
    }
}
