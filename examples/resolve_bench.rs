//! In-process resolve time: runs the resolver on `uwsgi --ini PATH`
//! (output to sinks) many times and prints the median and p99 time of one
//! resolve, in microseconds.
//!
//! Usage: `cargo run --release --example resolve_bench -- PATH [RUNS]`

use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use ruwsgi::config::{resolve, Halt, HostFacts, Inputs, Io};

const DEFAULT_RUNS: usize = 2000;
const WARMUP: usize = 50;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: resolve_bench PATH [RUNS]");
        std::process::exit(2);
    };
    let runs = match args.next().map(|r| r.to_string_lossy().parse::<usize>()) {
        None => DEFAULT_RUNS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("resolve_bench: RUNS must be a positive number");
            std::process::exit(2);
        }
    };
    let inputs = Inputs {
        argv: vec![
            b"uwsgi".to_vec(),
            b"--ini".to_vec(),
            path.as_bytes().to_vec(),
        ],
        env: std::env::vars_os()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        facts: HostFacts::detect(),
    };

    // One checked run first: a file that does not resolve measures nothing.
    match resolve_once(&inputs) {
        Ok(entries) => eprintln!(
            "resolve_bench: {} resolves to {entries} entries",
            path.to_string_lossy()
        ),
        Err(Halt::Fail(e)) => {
            eprintln!(
                "resolve_bench: {} does not resolve: {e}",
                path.to_string_lossy()
            );
            std::process::exit(1);
        }
        Err(other) => eprintln!("resolve_bench: resolve stopped early: {other:?}"),
    }

    for _ in 0..WARMUP {
        let _ = resolve_once(&inputs);
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let _ = std::hint::black_box(resolve_once(&inputs));
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "runs={runs} median_us={:.1} p99_us={:.1} min_us={:.1} max_us={:.1}",
        us(pick(0.5)),
        us(pick(0.99)),
        us(times[0]),
        us(times[times.len() - 1])
    );
}

/// One whole resolve, including cloning the inputs (the resolver takes
/// them by value, as `main` hands them over).
fn resolve_once(inputs: &Inputs) -> Result<usize, Halt> {
    let mut out = std::io::sink();
    let mut err = std::io::sink();
    resolve(
        inputs.clone(),
        Io {
            out: &mut out,
            err: &mut err,
        },
    )
    .map(|c| c.entries.len())
}
