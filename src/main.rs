//! The `uwsgi` binary: everything lives in the library.

fn main() {
    std::process::exit(ruwsgi::run::main());
}
