//! Bad configuration input where ruwsgi must do better than uWSGI 2.0.21
//! (which crashes, overflows its stack or runs out of memory): each case
//! ends with one error line naming where it came from, exit status 1, no
//! panic, in bounded time.

use std::ffi::OsString;
use std::fs;

use crate::util::{run_uwsgi, Invocation, Output, TempDir};

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(dir: &TempDir, args: &[&str]) -> Output {
    let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
    args.extend(["--show-config", "--privileged-binary-patch", "true"].map(OsString::from));
    run_uwsgi(
        dir.path(),
        &Invocation {
            args,
            env: Vec::new(),
            stdin: None,
        },
    )
}

fn assert_error(out: &Output, want: &[&str]) {
    let err = show(&out.stderr);
    assert!(!out.panicked(), "panicked: {err}");
    assert!(out.timeout.is_none(), "hung: {err}");
    assert_eq!(out.rc, 1, "exit status; stderr: {err}");
    let last = err.lines().last().unwrap_or_default().to_string();
    for w in want {
        assert!(last.contains(w), "last line {last:?} lacks {w:?}");
    }
}

#[test]
fn include_loop_names_the_chain() {
    let dir = TempDir::new();
    fs::write(dir.path().join("a.ini"), "[uwsgi]\nx = 1\nini = b.ini\n").unwrap();
    fs::write(dir.path().join("b.ini"), "[uwsgi]\ny = 2\nini = a.ini\n").unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_error(&out, &["loop", "a.ini", "b.ini", "[b.ini line 3]"]);
}

#[test]
fn self_include_by_path_variable() {
    let dir = TempDir::new();
    fs::write(dir.path().join("self.ini"), "[uwsgi]\nini = %p\n").unwrap();
    let out = run(&dir, &["--ini", "self.ini"]);
    assert_error(&out, &["loop", "[self.ini line 2]"]);
}

#[test]
fn section_shorthand_before_any_file() {
    let dir = TempDir::new();
    let out = run(&dir, &["--ini", ":base"]);
    assert_error(&out, &["base", "[command line argument 1]"]);
}

#[test]
fn self_referencing_placeholder_is_bounded() {
    let dir = TempDir::new();
    fs::write(dir.path().join("p.ini"), "[uwsgi]\nx = [%(x)]\n").unwrap();
    let out = run(&dir, &["--ini", "p.ini"]);
    assert_error(&out, &["does not terminate", "[p.ini line 2]"]);
}

#[test]
fn unreadable_at_file_names_the_line() {
    let dir = TempDir::new();
    fs::write(dir.path().join("a.ini"), "[uwsgi]\n\nv = @(missing.txt)\n").unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_error(
        &out,
        &[
            "open(\"missing.txt\"): No such file or directory",
            "[a.ini line 3]",
        ],
    );
}

#[test]
fn missing_nested_file_names_the_including_line() {
    let dir = TempDir::new();
    fs::write(
        dir.path().join("a.ini"),
        "[uwsgi]\n; comment\ninclude = nothere.ini\n",
    )
    .unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_error(
        &out,
        &["realpath() of nothere.ini failed", "[a.ini line 3]"],
    );
}

#[test]
fn error_lines_follow_joined_lines() {
    // `%` at the end of line 2 joins line 3: the error is still on line 4.
    let dir = TempDir::new();
    fs::write(
        dir.path().join("a.ini"),
        "[uwsgi]\na = x%\nb = y\nset-ph = master=1\n",
    )
    .unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_error(&out, &["master", "[a.ini line 4]"]);
}

#[test]
fn environment_errors_name_the_variable() {
    let dir = TempDir::new();
    let inv = Invocation {
        args: ["--show-config"].map(OsString::from).to_vec(),
        env: vec![(OsString::from("UWSGI_PROCESSES"), OsString::from("-2"))],
        stdin: None,
    };
    let out = run_uwsgi(dir.path(), &inv);
    assert_error(
        &out,
        &["invalid value for option \"processes\"", "UWSGI_PROCESSES"],
    );
}

#[test]
fn non_utf8_bytes_are_kept() {
    let dir = TempDir::new();
    fs::write(
        dir.path().join("a.ini"),
        b"[uwsgi]\nk\xff = v\xfe\xff\n".as_slice(),
    )
    .unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_eq!(out.rc, 0, "{}", show(&out.stderr));
    let want: &[u8] = b"\nk\xff = v\xfe\xff\n";
    assert!(
        out.stderr.windows(want.len()).any(|w| w == want),
        "{}",
        show(&out.stderr)
    );
}

#[test]
fn percent_at_end_of_file_vanishes() {
    let dir = TempDir::new();
    fs::write(dir.path().join("a.ini"), "[uwsgi]\nlast = 100%").unwrap();
    let out = run(&dir, &["--ini", "a.ini"]);
    assert_eq!(out.rc, 0);
    assert!(
        show(&out.stderr).contains("\nlast = 100\n"),
        "{}",
        show(&out.stderr)
    );
}

#[test]
fn large_file_resolves() {
    // 20,000 entries (about 0.7 MB) with placeholders, the last one asked for:
    // nothing is dropped or capped. A quadratic pass would show up here as a
    // timeout; the speed itself is measured by bench/config.sh.
    let dir = TempDir::new();
    let mut text = String::from("[uwsgi]\nbase = /srv\n");
    for i in 0..20_000 {
        text.push_str(&format!("key{i} = %(base)/{i} $(HOME) %n\n"));
    }
    fs::write(dir.path().join("big.ini"), text).unwrap();
    let inv = Invocation {
        args: ["--get", "key19999", "--ini", "big.ini"]
            .map(OsString::from)
            .to_vec(),
        env: Vec::new(),
        stdin: None,
    };
    let out = run_uwsgi(dir.path(), &inv);
    assert!(out.timeout.is_none(), "timed out");
    assert_eq!(out.rc, 0, "{}", show(&out.stderr));
    let home = dir.path().to_string_lossy().into_owned();
    assert_eq!(show(&out.stdout), format!("/srv/19999 {home} big\n"));
}
