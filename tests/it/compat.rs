//! Differential replay of `compat-fixtures/`: what the reference uWSGI 2.0.21
//! did (recorded by `compat-fixtures/record.sh` and `record-corpus.sh`) must be
//! what our binary does on the same inputs. See `compat-fixtures/README.md`.
//!
//! - `config_cases`: every case under `compat-fixtures/config/`.
//! - `corpus`: every recorded real-world file of `../shared/corpus/ini`, plus a
//!   no-panic run over every corpus file.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{
    copy_tree, extract_block, extract_load, extract_prefixed, first_difference, last_line,
    line_matches, lines, normalise, online_cpus, par_map, read_arg_lines, read_env_file, repo_root,
    run_uwsgi, show, visible, Invocation, Output, TempDir, SHOW_RECIPE,
};

/// Subdirectories of `dir` that hold a recording (the file `rc_file`, relative
/// to the subdirectory, exists), sorted by name.
fn recordings(dir: &Path, rc_file: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(rc_file).is_file())
        .collect();
    v.sort();
    v
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first line of a recorded one-line file (`rc`, `errline`).
fn read_line(path: &Path) -> Vec<u8> {
    lines(&read(path))
        .first()
        .map(|l| l.to_vec())
        .unwrap_or_default()
}

/// Compare one run of ours with a recording directory holding `rc`, `block`,
/// `load` and optionally `stdout`, `errline`, `grep`; returns the mismatches.
fn compare(out: &Output, tmp: &Path, expected: &Path, grep_prefix: Option<&[u8]>) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(why) = &out.timeout {
        bad.push(format!("timeout: {why}"));
    }
    if out.panicked() {
        bad.push(format!("PANIC: {}", show(last_line(&out.stderr))));
    }
    let stderr = normalise(&out.stderr, tmp);
    let rc = read_line(&expected.join("rc"));
    if rc != out.rc.to_string().as_bytes() {
        bad.push(format!(
            "rc: expected {} got {}",
            String::from_utf8_lossy(&rc),
            out.rc
        ));
    }
    let stdout_file = expected.join("stdout");
    if stdout_file.is_file() {
        if let Some(d) = first_difference(&read(&stdout_file), &normalise(&out.stdout, tmp)) {
            bad.push(format!("stdout: {d}"));
        }
    }
    if let Some(d) = first_difference(&read(&expected.join("block")), &extract_block(&stderr)) {
        bad.push(format!("block: {d}"));
    }
    if let Some(d) = first_difference(&read(&expected.join("load")), &extract_load(&stderr)) {
        bad.push(format!("load: {d}"));
    }
    let errline_file = expected.join("errline");
    if errline_file.is_file() {
        let want = read_line(&errline_file);
        let got = last_line(&stderr);
        if !line_matches(got, &want) {
            bad.push(format!(
                "errline: expected {} got {}",
                show(&want),
                show(got)
            ));
        }
    }
    if let Some(prefix) = grep_prefix {
        let want_bytes = read(&expected.join("grep"));
        let want = lines(&want_bytes);
        let got = extract_prefixed(&stderr, prefix);
        let same =
            want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| line_matches(g, w));
        if !same {
            bad.push(format!(
                "stderr lines starting with {}: expected {:?} got {:?}",
                show(prefix),
                want.iter()
                    .map(|l| String::from_utf8_lossy(l))
                    .collect::<Vec<_>>(),
                got.iter()
                    .map(|l| String::from_utf8_lossy(l))
                    .collect::<Vec<_>>()
            ));
        }
    }
    bad
}

/// Run one case of `compat-fixtures/config/` (format: README.md).
fn replay_case(case: &Path) -> Vec<String> {
    let tmp = TempDir::new();
    let files = case.join("files");
    if files.is_dir() {
        copy_tree(&files, tmp.path())
            .unwrap_or_else(|e| panic!("copying {}: {e}", files.display()));
    }
    let setup = case.join("setup.sh");
    if setup.is_file() {
        let ok = std::process::Command::new("sh")
            .arg(&setup)
            .current_dir(tmp.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{}: setup.sh failed", name_of(case));
    }
    let mode = fs::read_to_string(case.join("mode"))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|_| "show".into());
    let mut args = read_arg_lines(&case.join("args"), tmp.path());
    match mode.as_str() {
        "show" => args.extend(SHOW_RECIPE.iter().map(OsString::from)),
        "get" | "raw" => {}
        other => return vec![format!("bad mode {other:?}")],
    }
    let env_file = case.join("env");
    let inv = Invocation {
        args,
        env: if env_file.is_file() {
            read_env_file(&env_file, tmp.path())
        } else {
            Vec::new()
        },
        stdin: Some(case.join("stdin")).filter(|p| p.is_file()),
    };
    let out = run_uwsgi(tmp.path(), &inv);
    let deviation = case.join("deviation");
    if deviation.is_file() {
        return check_deviation(case, &deviation, &out);
    }
    let grep = case.join("grep");
    let prefix = grep.is_file().then(|| read_line(&grep));
    compare(&out, tmp.path(), &case.join("expected"), prefix.as_deref())
}

/// A case where ruwsgi deliberately differs from uWSGI (listed in the
/// README's differences). The `deviation` file's first line says why; each
/// `stderr: TEXT` / `rc: N` line states what ruwsgi must do instead.
fn check_deviation(case: &Path, file: &Path, out: &Output) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap_or_default();
    let mut bad = Vec::new();
    if out.panicked() || out.timeout.is_some() {
        bad.push("panicked or hung".to_string());
    }
    let mut checks = 0;
    for line in text.lines().skip(1) {
        if let Some(want) = line.strip_prefix("stderr: ") {
            checks += 1;
            if !String::from_utf8_lossy(&out.stderr).contains(want) {
                bad.push(format!("stderr lacks {want:?}"));
            }
        } else if let Some(rc) = line.strip_prefix("rc: ") {
            checks += 1;
            if rc.trim().parse::<i32>().ok() != Some(out.rc) {
                bad.push(format!("rc: expected {rc} got {}", out.rc));
            }
        }
    }
    if checks == 0 {
        bad.push("deviation file states no expectation".into());
    }
    if bad.is_empty() {
        visible(&format!(
            "known deviation {}: {}",
            name_of(case),
            text.lines().next().unwrap_or_default()
        ));
    }
    bad
}

/// Print the per-case report and fail once if anything mismatched.
fn report(what: &str, names: &[String], results: &[Vec<String>], extra: &str) {
    let failing: Vec<(&String, &Vec<String>)> = names
        .iter()
        .zip(results)
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let pass = names.len() - failing.len();
    for (name, bad) in &failing {
        eprintln!("--- {what} {name}");
        for b in bad.iter() {
            eprintln!("    {b}");
        }
    }
    let pct = if names.is_empty() {
        100.0
    } else {
        100.0 * pass as f64 / names.len() as f64
    };
    visible(&format!(
        "{what}: {pass}/{} cases pass ({pct:.1}%){extra}",
        names.len()
    ));
    if !failing.is_empty() {
        panic!(
            "{what}: {}/{} cases pass; {} mismatch (details above)",
            pass,
            names.len(),
            failing.len()
        );
    }
}

#[test]
fn config_cases() {
    let root = repo_root().join("compat-fixtures/config");
    let cases = recordings(&root, "expected/rc");
    assert!(
        !cases.is_empty(),
        "no recorded cases under {}",
        root.display()
    );
    let results = par_map(&cases, |c| replay_case(c));
    let names: Vec<String> = cases.iter().map(|c| name_of(c)).collect();
    report("config case", &names, &results, "");
}

/// The corpus of real-world ini files: `$RUWSGI_CORPUS` or `../shared/corpus/ini`.
fn corpus_dir() -> PathBuf {
    std::env::var_os("RUWSGI_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus/ini"))
}

/// Options that act on the machine before `--get` exits; the no-panic run of
/// the files that were not recorded forbids them (uWSGI then exits 1).
const ACTING_OPTIONS: &str = "exec-asap exec-pre-jail exec-post-jail exec-in-jail exec-as-root exec-as-user \
    exec-as-user-atexit hook-asap hook-pre-jail hook-post-jail hook-in-jail hook-as-root hook-as-user \
    hook-as-user-atexit call-asap call-pre-jail call-post-jail call-in-jail call-as-root call-as-user \
    call-as-user-atexit mount-asap umount-asap mount-pre-jail umount-pre-jail spooler spooler-external \
    stop reload pause suspend resume signal flock flock2 flock-wait flock-wait2 early-emperor chroot \
    unshare unshare2 shared-socket envdir early-envdir extract connect-and-read build-plugin dlopen \
    immediate-uid immediate-gid fallback-config";

/// Why a recorded corpus file cannot be replayed on this machine, if so.
fn unmet_requirement(rec: &Path) -> Option<String> {
    let text = fs::read_to_string(rec.join("requires")).ok()?;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("ncpus=") {
            let here = online_cpus();
            if here.map(|h| h.to_string()).as_deref() != Some(n.trim()) {
                return Some(format!(
                    "recorded with {n} CPUs (%k), this machine has {here:?}"
                ));
            }
        }
    }
    None
}

fn replay_corpus_file(rec: &Path, corpus: &Path) -> Vec<String> {
    let name = name_of(rec);
    let ini = format!("{name}.ini");
    let tmp = TempDir::new();
    fs::copy(corpus.join(&ini), tmp.path().join(&ini))
        .unwrap_or_else(|e| panic!("copying {ini}: {e}"));
    let args_file = rec.join("args");
    let mut args: Vec<OsString> = if args_file.is_file() {
        read_arg_lines(&args_file, tmp.path())
    } else {
        vec!["--ini".into(), ini.into()]
    };
    args.extend(SHOW_RECIPE.iter().map(OsString::from));
    let out = run_uwsgi(
        tmp.path(),
        &Invocation {
            args,
            ..Invocation::default()
        },
    );
    compare(&out, tmp.path(), rec, None)
}

/// Run our binary over a corpus file that has no recording, without letting
/// it act (see `ACTING_OPTIONS`); report a panic or a hang.
fn no_panic_probe(ini_path: &Path) -> Vec<String> {
    let ini = ini_path.file_name().expect("a file name").to_os_string();
    let tmp = TempDir::new();
    fs::copy(ini_path, tmp.path().join(&ini))
        .unwrap_or_else(|e| panic!("copying {}: {e}", ini_path.display()));
    let args: Vec<OsString> = vec![
        "--get".into(),
        "ruwsgi-panic-probe".into(),
        "--blacklist".into(),
        ACTING_OPTIONS.into(),
        "--ini".into(),
        ini,
        "--set".into(),
        "vacuum=false".into(),
    ];
    let out = run_uwsgi(
        tmp.path(),
        &Invocation {
            args,
            ..Invocation::default()
        },
    );
    let mut bad = Vec::new();
    if out.panicked() {
        bad.push(format!("PANIC: {}", show(last_line(&out.stderr))));
    }
    if let Some(why) = out.timeout {
        bad.push(format!("timeout: {why}"));
    }
    bad
}

#[test]
fn corpus() {
    let corpus = corpus_dir();
    if !corpus.is_dir() {
        visible(&format!(
            "SKIPPED: corpus replay: no corpus at {} (set RUWSGI_CORPUS)",
            corpus.display()
        ));
        return;
    }
    let rec_root = repo_root().join("compat-fixtures/corpus");
    let (runnable, skipped): (Vec<PathBuf>, Vec<(PathBuf, String)>) = {
        let mut run = Vec::new();
        let mut skip = Vec::new();
        for rec in recordings(&rec_root, "rc") {
            match unmet_requirement(&rec) {
                Some(why) => skip.push((rec, why)),
                None => run.push(rec),
            }
        }
        (run, skip)
    };
    for (rec, why) in &skipped {
        visible(&format!("SKIPPED: corpus {}: {why}", name_of(rec)));
    }
    let results = par_map(&runnable, |r| replay_corpus_file(r, &corpus));
    let names: Vec<String> = runnable.iter().map(|r| name_of(r)).collect();

    // Every corpus file without a recording still must not make us panic.
    let mut others: Vec<PathBuf> = fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .filter(|p| {
            !p.file_stem()
                .is_some_and(|s| rec_root.join(s).join("rc").is_file())
        })
        .collect();
    others.sort();
    let probe_results = par_map(&others, |p| no_panic_probe(p));
    let mut panics = 0;
    for (p, bad) in others.iter().zip(&probe_results) {
        for b in bad {
            panics += 1;
            eprintln!("--- corpus (unrecorded) {}: {b}", p.display());
        }
    }
    let extra = format!(
        "; {} skipped on this machine; {} unrecorded files probed, {panics} panics/hangs",
        skipped.len(),
        others.len()
    );
    report("corpus file", &names, &results, &extra);
    assert_eq!(
        panics, 0,
        "corpus: {panics} unrecorded files made our binary panic or hang"
    );
}
