//! Link-time settings:
//! - the directory of libpython as an rpath when it is not a system library
//!   directory, so the binary starts without LD_LIBRARY_PATH;
//! - packed relative relocations (DT_RELR) when the toolchain and C library
//!   support them: the table the dynamic loader reads at every start shrinks
//!   from hundreds of KiB to a few, and with it every process's memory;
//! - `RUWSGI_SOURCE_ID`, a hash of the sources, so that `uwsgi` and the
//!   `uwsgi-emperor` it hands the emperor to know whether they were built
//!   from the same code (emperor/handoff.rs).

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hash_tree(Path::new("src"), &mut hasher);
    println!("cargo:rustc-env=RUWSGI_SOURCE_ID={:016x}", hasher.finish());
    if links_with_relr() {
        println!("cargo:rustc-link-arg=-Wl,-z,pack-relative-relocs");
    }
    if std::env::var_os("CARGO_FEATURE_PYTHON").is_none() {
        return;
    }
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        let system = [
            "/lib",
            "/usr/lib",
            "/lib64",
            "/usr/lib64",
            "/usr/lib/x86_64-linux-gnu",
            "/lib/x86_64-linux-gnu",
        ];
        if !system.contains(&dir.trim_end_matches('/')) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}

/// Hashes the names and contents of the files under `dir`, in name order
/// (`DefaultHasher::new` has fixed keys: the same tree gives the same id).
fn hash_tree(dir: &Path, hasher: &mut impl Hasher) {
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => return,
    };
    entries.sort();
    for path in entries {
        path.hash(hasher);
        if path.is_dir() {
            hash_tree(&path, hasher);
        } else if let Ok(bytes) = std::fs::read(&path) {
            bytes.hash(hasher);
        }
    }
}

/// Whether a C program linked with `-z pack-relative-relocs` builds and
/// runs here (binutils 2.38 and glibc 2.36 or later).
fn links_with_relr() -> bool {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return false;
    }
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return false;
    };
    let dir = Path::new(&out);
    let src = dir.join("relr_probe.c");
    let exe = dir.join("relr_probe");
    let program =
        "static const char *p[] = {\"a\", \"b\"};\nint main(void) { return p[1][0] != 'b'; }\n";
    if std::fs::write(&src, program).is_err() {
        return false;
    }
    let cc = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let built = Command::new(cc)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .is_ok_and(|o| o.status.success());
    built && Command::new(&exe).status().is_ok_and(|s| s.success())
}
