//! The vassal lifecycle, step by step, against a recording [`Effects`].

use super::*;

#[derive(Default)]
struct Fx {
    sent: Vec<ToVassal>,
    killed: Vec<libc::pid_t>,
    lines: Vec<Line>,
    broken_pipe: bool,
}

impl Effects for Fx {
    fn send(&mut self, msg: ToVassal) -> std::io::Result<()> {
        if self.broken_pipe {
            return Err(std::io::Error::from_raw_os_error(libc::EPIPE));
        }
        self.sent.push(msg);
        Ok(())
    }
    fn kill(&mut self, pid: libc::pid_t) {
        self.killed.push(pid);
    }
    fn log(&mut self, line: Line) {
        self.lines.push(line);
    }
}

const POLICY: Policy = Policy {
    stop: ToVassal::Stop,
    curse_tolerance: Duration::from_secs(30),
    required_heartbeat: Duration::from_secs(4),
};

fn now0() -> Now {
    Now {
        at: Instant::now(),
        wall: 1_000,
    }
}

fn later(now: Now, secs: u64) -> Now {
    Now {
        at: now.at + Duration::from_secs(secs),
        wall: now.wall + secs as i64,
    }
}

fn running(pid: libc::pid_t) -> Vassal {
    let mut v = Vassal::new(
        b"a.ini".to_vec(),
        0,
        1,
        Mtime {
            secs: 900,
            nanos: 5,
        },
        (0, 0),
        now0(),
    );
    v.state = State::Running { pid };
    v
}

fn verbose(s: &str) -> Line {
    Line::Verbose(s.to_string())
}

#[test]
fn reload_on_modification() {
    let mut v = running(42);
    let mut fx = Fx::default();
    let t = now0();
    let m = Mtime {
        secs: 900,
        nanos: 6,
    };
    assert_eq!(v.on(Event::Modified(m), t, &POLICY, &mut fx), Outcome::Keep);
    assert_eq!(fx.sent, vec![ToVassal::Reload]);
    assert_eq!(
        fx.lines,
        vec![verbose("[emperor] reload the uwsgi instance a.ini")]
    );
    assert_eq!(
        (v.respawns, v.last_mod, v.ready, v.accepting),
        (1, m, false, false)
    );
}

#[test]
fn reload_on_a_broken_pipe_curses() {
    let mut v = running(42);
    let mut fx = Fx {
        broken_pipe: true,
        ..Fx::default()
    };
    v.on(Event::Modified(Mtime::now()), now0(), &POLICY, &mut fx);
    assert!(matches!(v.state, State::Dying { pid: Some(42), .. }));
    assert_eq!(v.respawns, 0);
    assert_eq!(
        fx.lines.last(),
        Some(&verbose(
            "[emperor] curse the uwsgi instance a.ini (pid: 42)"
        ))
    );
}

#[test]
fn removed_file_stops_then_kills_after_tolerance() {
    let mut v = running(42);
    let mut fx = Fx::default();
    let t = now0();
    assert_eq!(v.on(Event::Gone, t, &POLICY, &mut fx), Outcome::Keep);
    assert_eq!(fx.sent, vec![ToVassal::Stop]);
    assert_eq!(
        fx.lines,
        vec![verbose("[emperor] stop the uwsgi instance a.ini")]
    );
    assert_eq!(v.status(), 1);
    assert_eq!(
        v.on(Event::Gone, t, &POLICY, &mut fx),
        Outcome::Keep,
        "a second stop is ignored"
    );
    assert_eq!(
        v.on(Event::Modified(Mtime::now()), t, &POLICY, &mut fx),
        Outcome::Keep
    );
    assert_eq!(fx.sent.len(), 1, "no reload while dying");
    assert_eq!(v.deadline(&POLICY), Some(t.at + POLICY.curse_tolerance));
    v.on(Event::Tick, later(t, 29), &POLICY, &mut fx);
    assert!(fx.killed.is_empty());
    v.on(Event::Tick, later(t, 30), &POLICY, &mut fx);
    assert_eq!(fx.killed, vec![42]);
    assert_eq!(
        v.deadline(&POLICY),
        Some(later(t, 60).at),
        "another tolerance period"
    );
    assert_eq!(
        v.on(Event::Exited(ExitKind::Signal(9)), t, &POLICY, &mut fx),
        Outcome::Remove
    );
}

#[test]
fn graceful_stop_byte() {
    let mut v = running(7);
    let mut fx = Fx::default();
    let graceful = Policy {
        stop: ToVassal::GracefulStop,
        ..POLICY
    };
    v.on(Event::Gone, now0(), &graceful, &mut fx);
    assert_eq!(fx.sent, vec![ToVassal::GracefulStop]);
}

#[test]
fn death_paths() {
    let cases: &[(&str, bool, ExitKind, Outcome)] = &[
        (
            "crash while running respawns",
            false,
            ExitKind::Signal(9),
            Outcome::Respawn,
        ),
        (
            "exit 0 while running respawns",
            false,
            ExitKind::Code(0),
            Outcome::Respawn,
        ),
        (
            "exile code is just removed",
            false,
            ExitKind::Code(EXILE_CODE),
            Outcome::Remove,
        ),
        (
            "after EOF the entry is removed",
            true,
            ExitKind::Code(1),
            Outcome::Remove,
        ),
    ];
    for (name, eof_first, exit, want) in cases {
        let mut v = running(5);
        let mut fx = Fx::default();
        if *eof_first {
            v.on(Event::PipeClosed, now0(), &POLICY, &mut fx);
            assert_eq!(
                fx.lines,
                vec![verbose("[emperor] curse the uwsgi instance a.ini (pid: 5)")],
                "{name}"
            );
        }
        assert_eq!(
            v.on(Event::Exited(*exit), now0(), &POLICY, &mut fx),
            *want,
            "{name}"
        );
    }
}

#[test]
fn messages() {
    let mut v = running(5);
    let mut fx = Fx::default();
    let t = now0();
    assert_eq!(
        v.on(Event::Message(FromVassal::Spawned), t, &POLICY, &mut fx),
        Outcome::Keep
    );
    assert_eq!(
        v.on(Event::Message(FromVassal::Accepting), t, &POLICY, &mut fx),
        Outcome::Keep
    );
    assert_eq!(
        v.on(Event::Message(FromVassal::Loyal), t, &POLICY, &mut fx),
        Outcome::Loyal
    );
    assert_eq!(
        v.on(Event::Message(FromVassal::Sos), t, &POLICY, &mut fx),
        Outcome::Zerg
    );
    assert_eq!(
        fx.lines,
        vec![
            verbose("[emperor] vassal a.ini has been spawned"),
            verbose("[emperor] vassal a.ini is ready to accept requests"),
            verbose("[emperor] vassal a.ini is now loyal"),
        ]
    );
    assert!(v.ready && v.accepting && v.loyal);
    assert_eq!(
        (v.last_ready, v.last_accepting, v.last_loyal),
        (1000, 1000, 1000)
    );
    // 22 without on-demand: treated as a stop.
    v.on(Event::Message(FromVassal::StopRequest), t, &POLICY, &mut fx);
    assert_eq!(fx.sent, vec![ToVassal::Stop]);
    assert_eq!(v.status(), 1);
}

#[test]
fn heartbeat_supervision() {
    let mut v = running(9);
    let mut fx = Fx::default();
    let t = now0();
    assert_eq!(
        v.deadline(&POLICY),
        None,
        "not supervised before the first heartbeat"
    );
    v.on(Event::Message(FromVassal::Heartbeat), t, &POLICY, &mut fx);
    assert_eq!(v.deadline(&POLICY), Some(later(t, 4).at));
    v.on(Event::Tick, later(t, 3), &POLICY, &mut fx);
    assert!(fx.killed.is_empty());
    v.on(Event::Tick, later(t, 4), &POLICY, &mut fx);
    assert_eq!(fx.killed, vec![9]);
    assert_eq!(
        fx.lines,
        vec![Line::Plain(
            "[emperor] vassal a.ini sent no heartbeat in last 4 seconds, brutally respawning it..."
                .into()
        )]
    );
    assert_eq!(v.deadline(&POLICY), None);
}

#[test]
fn on_demand_round_trip() {
    let t = now0();
    let mut v = Vassal::new(b"od.ini".to_vec(), 0, 1, Mtime::default(), (0, 0), t);
    v.socket_name = Some(b"/run/od.socket".to_vec());
    let mut fx = Fx::default();
    assert_eq!(v.pid(), None);
    assert_eq!(
        v.on(Event::Modified(Mtime::now()), t, &POLICY, &mut fx),
        Outcome::Keep
    );
    assert_eq!(
        fx.lines[0],
        verbose("[emperor] updated configuration for \"on demand\" instance od.ini")
    );
    assert_eq!(v.on(Event::Connection, t, &POLICY, &mut fx), Outcome::Start);
    v.state = State::Running { pid: 11 };
    v.on(Event::Message(FromVassal::StopRequest), t, &POLICY, &mut fx);
    assert_eq!(v.status(), 2);
    assert_eq!(
        fx.lines[1],
        verbose("[emperor] bringing back instance od.ini to on-demand mode")
    );
    v.on(Event::PipeClosed, t, &POLICY, &mut fx);
    assert_eq!(v.status(), 2, "a curse keeps it returning");
    assert_eq!(
        v.on(Event::Exited(ExitKind::Code(0)), t, &POLICY, &mut fx),
        Outcome::Listen
    );
    assert_eq!(v.state, State::Waiting);
    assert_eq!(
        fx.lines.last(),
        Some(&Line::Plain(
            "[uwsgi-emperor] od.ini -> back to \"on demand\" mode, waiting for connections on socket \"/run/od.socket\" ..."
                .into()
        ))
    );
    // A waiting vassal whose file goes is removed at once.
    assert_eq!(v.on(Event::Gone, t, &POLICY, &mut fx), Outcome::Remove);
}

#[test]
fn tyrant_owner_change_stops() {
    let mut v = running(3);
    let mut fx = Fx::default();
    v.on(Event::OwnerChanged, now0(), &POLICY, &mut fx);
    assert_eq!(
        fx.lines,
        vec![
            Line::Plain(
                "!!! permissions of file a.ini changed. stopping the instance... !!!".into()
            ),
            verbose("[emperor] stop the uwsgi instance a.ini"),
        ]
    );
    assert_eq!(fx.sent, vec![ToVassal::Stop]);
}
