//! `py-autoreload = N`: every N seconds a thread of each worker looks at
//! the files of the loaded modules (`sys.modules[*].__file__`) and, when
//! one changed since it was first seen, logs it and asks the master for a
//! graceful reload (SIGHUP), as uWSGI's reloader thread does.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pyo3::prelude::*;

use super::{interp, log};

/// The source file a module was loaded from (`x.pyc` -> `x.py`).
fn source_of(file: &str) -> String {
    for ext in [".pyc", ".pyo", ".pyd"] {
        if file.ends_with(ext) {
            return file[..file.len() - 1].to_string();
        }
    }
    file.to_string()
}

fn module_files(py: Python<'_>, ignore: &[String]) -> PyResult<Vec<String>> {
    let modules = py.import("sys")?.getattr("modules")?;
    // A copy: importing on another thread may change the dict meanwhile.
    let items = modules.call_method0("copy")?.call_method0("items")?;
    let mut files = Vec::new();
    for item in items.try_iter()? {
        let (name, module): (String, Bound<'_, PyAny>) = match item.and_then(|i| i.extract()) {
            Ok(pair) => pair,
            Err(_) => continue,
        };
        if ignore.contains(&name) {
            continue;
        }
        let Ok(file) = module.getattr("__file__") else {
            continue;
        };
        if let Ok(f) = file.extract::<String>() {
            files.push(source_of(&f));
        }
    }
    Ok(files)
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Starts the scanning thread (nothing when `interval` is 0).
pub fn start_autoreloader(interval: u64, ignore: Vec<String>) {
    if interval == 0 {
        return;
    }
    if interp::worker_id() == 1 {
        log::line("Python auto-reloader enabled");
    }
    let spawned = std::thread::Builder::new()
        .name("uWSGIAutoReloader".into())
        .spawn(move || {
            let mut seen: HashMap<String, SystemTime> = HashMap::new();
            loop {
                std::thread::sleep(Duration::from_secs(interval));
                let files = Python::attach(|py| module_files(py, &ignore)).unwrap_or_default();
                for file in files {
                    let Some(now) = mtime(&file) else { continue };
                    match seen.get(&file) {
                        None => {
                            seen.insert(file, now);
                        }
                        Some(then) if *then != now => {
                            log::line(&format!(
                                "[uwsgi-python-reloader] module/file {file} has been modified"
                            ));
                            let _ = Python::attach(super::uwsgi_module::reload);
                            return;
                        }
                        Some(_) => {}
                    }
                }
            }
        });
    if let Err(e) = spawned {
        log::line(&format!("unable to start the Python auto-reloader: {e}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sources() {
        assert_eq!(super::source_of("/a/b.pyc"), "/a/b.py");
        assert_eq!(super::source_of("/a/b.py"), "/a/b.py");
        assert_eq!(super::source_of("/a/b.so"), "/a/b.so");
    }
}
