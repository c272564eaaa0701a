//! The emperor stats document (`emperor_send_stats`, spec §1.14): the
//! same keys in the same order, laid out as uWSGI's stats writer does
//! (newlines and tab indentation, or nothing with `stats-minified`). One
//! deviation: strings are JSON-escaped (uWSGI prints them raw).

use super::blacklist;
use super::vassal::Vassal;

/// Everything the document shows.
#[derive(Debug)]
pub struct View<'a> {
    pub version: &'a str,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: Vec<u8>,
    pub monitors: Vec<Vec<u8>>,
    pub tyrant: bool,
    /// In creation order.
    pub vassals: Vec<&'a Vassal>,
    pub blacklist: &'a [blacklist::Entry],
    pub minified: bool,
}

/// uWSGI's `struct uwsgi_stats` writer.
struct Writer {
    out: Vec<u8>,
    tabs: usize,
    minified: bool,
}

impl Writer {
    fn new(minified: bool) -> Writer {
        let mut w = Writer {
            out: Vec::with_capacity(8192),
            tabs: 1,
            minified,
        };
        w.symbol_nl(b'{');
        w
    }
    fn symbol_nl(&mut self, c: u8) {
        self.out.push(c);
        if !self.minified {
            self.out.push(b'\n');
        }
    }
    fn comma(&mut self) {
        self.symbol_nl(b',');
    }
    fn indent(&mut self) {
        if !self.minified {
            self.out.resize(self.out.len() + self.tabs, b'\t');
        }
    }
    fn close(&mut self, c: u8) {
        if !self.minified {
            self.out.push(b'\n');
            self.tabs -= 1;
            self.indent();
        }
        self.out.push(c);
    }
    fn object_open(&mut self) {
        self.indent();
        if !self.minified {
            self.tabs += 1;
        }
        self.symbol_nl(b'{');
    }
    fn list_open(&mut self) {
        self.tabs += 1;
        self.symbol_nl(b'[');
    }
    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &b in s {
            match b {
                b'"' | b'\\' => self.out.extend_from_slice(&[b'\\', b]),
                0..=0x1f => self.out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                _ => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }
    fn key(&mut self, k: &str) {
        self.indent();
        self.string(k.as_bytes());
        self.out.push(b':');
    }
    fn text(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.string(v);
        self.comma();
    }
    fn num(&mut self, k: &str, n: i64) {
        self.key(k);
        self.out.extend_from_slice(n.to_string().as_bytes());
    }
    fn num_comma(&mut self, k: &str, n: i64) {
        self.num(k, n);
        self.comma();
    }
}

fn vassal(w: &mut Writer, v: &Vassal) {
    w.object_open();
    w.text("id", &v.name);
    w.num_comma("pid", v.pid().map_or(-1, i64::from));
    w.num_comma("born", v.born);
    w.num_comma("last_mod", v.last_mod.secs);
    w.num_comma("last_heartbeat", v.last_heartbeat_wall);
    w.num_comma("loyal", i64::from(v.loyal));
    w.num_comma("ready", i64::from(v.ready));
    w.num_comma("accepting", i64::from(v.accepting));
    w.num_comma("last_loyal", v.last_loyal);
    w.num_comma("last_ready", v.last_ready);
    w.num_comma("last_accepting", v.last_accepting);
    w.num_comma("first_run", v.first_run);
    w.num_comma("last_run", v.last_run);
    w.num_comma("cursed", v.cursed_wall);
    w.num_comma("zerg", i64::from(v.zerg));
    w.text("on_demand", v.socket_name.as_deref().unwrap_or_default());
    w.num_comma("uid", i64::from(v.uid));
    w.num_comma("gid", i64::from(v.gid));
}

/// Renders the document (no trailing newline, as uWSGI).
pub fn render(view: &View, monitor_label: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut w = Writer::new(view.minified);
    w.text("version", view.version.as_bytes());
    w.num_comma("pid", i64::from(view.pid));
    w.num_comma("uid", i64::from(view.uid));
    w.num_comma("gid", i64::from(view.gid));
    w.text("cwd", &view.cwd);
    w.key("emperor");
    w.list_open();
    for (i, m) in view.monitors.iter().enumerate() {
        if i > 0 {
            w.comma();
        }
        w.string(m);
    }
    w.close(b']');
    w.comma();
    w.num_comma("emperor_tyrant", i64::from(view.tyrant));
    w.num_comma("throttle_level", 0);
    w.key("vassals");
    w.list_open();
    for (i, v) in view.vassals.iter().enumerate() {
        if i > 0 {
            w.comma();
        }
        vassal(&mut w, v);
        w.text("monitor", &monitor_label(v.monitor));
        w.num("respawns", v.respawns as i64);
        w.close(b'}');
    }
    w.close(b']');
    w.comma();
    w.key("blacklist");
    w.list_open();
    for (i, b) in view.blacklist.iter().enumerate() {
        if i > 0 {
            w.comma();
        }
        w.object_open();
        w.text("id", &b.id);
        w.num_comma("throttle_level", (b.throttle_us / 1000) as i64);
        w.num_comma("attempt", i64::from(b.attempt));
        w.num_comma("first_attempt", b.first_attempt_wall);
        w.num("last_attempt", b.last_attempt_wall);
        w.close(b'}');
    }
    w.close(b']');
    w.close(b'}');
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emperor::vassal::{Mtime, Now, State};

    fn view<'a>(
        vassals: Vec<&'a Vassal>,
        blacklist: &'a [blacklist::Entry],
        minified: bool,
    ) -> View<'a> {
        View {
            version: "2.0.21-debian",
            pid: 12916,
            uid: 0,
            gid: 0,
            cwd: b"/etc/uwsgi/vassals".to_vec(),
            monitors: vec![b"/etc/uwsgi/vassals".to_vec()],
            tyrant: false,
            vassals,
            blacklist,
            minified,
        }
    }

    #[test]
    fn layout_matches_uwsgi() {
        let now = Now {
            at: std::time::Instant::now(),
            wall: 1795796861,
        };
        let mut v = Vassal::new(
            b"a.ini".to_vec(),
            0,
            1,
            Mtime {
                secs: 1795796852,
                nanos: 0,
            },
            (0, 0),
            now,
        );
        v.state = State::Running { pid: 12918 };
        let doc = String::from_utf8(render(&view(vec![&v], &[], false), |_| {
            b"/etc/uwsgi/vassals".to_vec()
        }))
        .unwrap();
        let want = "{\n\t\"version\":\"2.0.21-debian\",\n\t\"pid\":12916,\n\t\"uid\":0,\n\t\"gid\":0,\n\
            \t\"cwd\":\"/etc/uwsgi/vassals\",\n\t\"emperor\":[\n\"/etc/uwsgi/vassals\"\n\t],\n\
            \t\"emperor_tyrant\":0,\n\t\"throttle_level\":0,\n\t\"vassals\":[\n\t\t{\n\
            \t\t\t\"id\":\"a.ini\",\n\t\t\t\"pid\":12918,\n\t\t\t\"born\":1795796852,\n\
            \t\t\t\"last_mod\":1795796852,\n\t\t\t\"last_heartbeat\":0,\n\t\t\t\"loyal\":0,\n\
            \t\t\t\"ready\":0,\n\t\t\t\"accepting\":0,\n\t\t\t\"last_loyal\":0,\n\t\t\t\"last_ready\":0,\n\
            \t\t\t\"last_accepting\":0,\n\t\t\t\"first_run\":1795796861,\n\t\t\t\"last_run\":1795796861,\n\
            \t\t\t\"cursed\":0,\n\t\t\t\"zerg\":0,\n\t\t\t\"on_demand\":\"\",\n\t\t\t\"uid\":0,\n\
            \t\t\t\"gid\":0,\n\t\t\t\"monitor\":\"/etc/uwsgi/vassals\",\n\t\t\t\"respawns\":0\n\t\t}\n\t],\n\
            \t\"blacklist\":[\n\n\t]\n}";
        assert_eq!(doc, want);
    }

    #[test]
    fn minified_and_escaped() {
        let now = Now {
            at: std::time::Instant::now(),
            wall: 5,
        };
        let v = Vassal::new(b"q\"x.ini".to_vec(), 0, 1, Mtime::default(), (0, 0), now);
        let doc = String::from_utf8(render(&view(vec![&v], &[], true), |_| b"m".to_vec())).unwrap();
        assert!(!doc.contains('\n') && !doc.contains('\t'), "{doc}");
        assert!(doc.contains("\"id\":\"q\\\"x.ini\",\"pid\":-1,"), "{doc}");
        assert!(doc.ends_with("\"blacklist\":[]}"), "{doc}");
    }
}
