//! `uwsgi-emperor`: the emperor alone, without libpython, exec'd by
//! `uwsgi` once it knows it is an emperor (see `emperor::handoff`).

fn main() {
    std::process::exit(ruwsgi::emperor::handoff::main());
}
