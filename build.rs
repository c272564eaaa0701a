//! Embeds the directory of libpython as an rpath when it is not a system
//! library directory, so the binary starts without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
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
