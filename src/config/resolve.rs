//! The resolver: builds uWSGI's ordered option list from the environment,
//! the command line and every config file, then runs the three expansion
//! passes and the configure phase, reproducing `core/uwsgi.c: uwsgi_setup`
//! up to the point where roles start.
//!
//! It owns the global state uWSGI keeps while reading: the magic table,
//! the last ini file (for `ini = :section`), the one open logic block,
//! black/white lists, strict mode, custom options and injections. It does
//! not start anything; the caller decides what to do with the [`Config`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use super::facts::HostFacts;
use super::logic::{self, Cond, World};
use super::options::{self, Arg, Kind, OptSpec};
use super::placeholders::{self, MagicTable};
use super::source::{show, Entry, Origin};
use super::{ini, sources, Config, ConfigError, Halt, Io};
use crate::cli::{OptionTable, Scanner};

/// Environment variables uWSGI keeps for itself and never maps to options.
const INTERNAL_ENV: &[&str] = &[
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
];

/// Deepest chain of nested config loads we follow before calling it a loop.
const MAX_LOAD_DEPTH: usize = 64;

/// Plugins built into ruwsgi, by the internal name `if-plugin` tests.
const BUILTIN_PLUGINS: &[&str] = &[
    "python",
    "http",
    "corerouter",
    "router_uwsgi",
    "router_http",
    "router_redirect",
    "router_rewrite",
    "router_static",
    "router_basicauth",
];

/// One file being read, for include-loop detection.
#[derive(Debug, Clone)]
struct LoadFrame {
    identity: Vec<u8>,
    section: Vec<u8>,
    /// How the chain is shown in the error.
    shown: String,
}

impl PartialEq for LoadFrame {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity && self.section == other.section
    }
}

/// A `declare-option` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomOption {
    pub name: Vec<u8>,
    pub template: Vec<u8>,
    pub has_args: bool,
}

/// An option as it was applied, in application order (what the typed
/// model reads: the last applied scalar wins, lists append).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
struct Block {
    cond: Cond,
    arg: Vec<u8>,
}

/// Everything the resolver reads from outside.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// argv, program name first.
    pub argv: Vec<Vec<u8>>,
    /// The environment, in `environ` order.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub facts: HostFacts,
}

struct Resolver<'io> {
    io: Io<'io>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    facts: HostFacts,
    entries: Vec<Entry>,
    first_index: HashMap<Vec<u8>, usize>,
    applied: Vec<Applied>,
    custom: Vec<CustomOption>,
    magic: MagicTable,
    first_round_done: bool,
    last_file: Option<Vec<u8>>,
    block: Option<Block>,
    block_running: bool,
    blacklist: Option<Vec<u8>>,
    whitelist: Option<Vec<u8>>,
    strict: bool,
    no_initial_output: bool,
    inject_before: Vec<Vec<u8>>,
    inject_after: Vec<Vec<u8>>,
    load_stack: Vec<LoadFrame>,
    implied: u32,
    plugins: Vec<Vec<u8>>,
    get: Vec<Vec<u8>>,
    dirty: bool,
    origin: Origin,
}

/// Resolves argv and environment into the final option list.
pub fn resolve(inputs: Inputs, io: Io<'_>) -> Result<Config, Halt> {
    let mut r = Resolver::new(inputs.env, inputs.facts, io);
    r.run(inputs.argv)?;
    Ok(r.finish())
}

impl<'io> Resolver<'io> {
    fn new(env: Vec<(Vec<u8>, Vec<u8>)>, facts: HostFacts, io: Io<'io>) -> Self {
        let mut magic = MagicTable::default();
        magic.set(b'v', facts.cwd.clone());
        magic.set(b'h', facts.hostname.clone());
        magic.set(b't', facts.now_secs.to_string());
        magic.set(b'T', facts.now_micros.to_string());
        magic.set(b'V', facts.version.clone());
        magic.set(b'k', facts.cpus.to_string());
        magic.set(b'[', "\x1b");
        magic.set(b'u', facts.uid.to_string());
        magic.set(b'U', facts.user.clone());
        magic.set(b'g', facts.gid.to_string());
        magic.set(b'G', facts.group.clone());
        Resolver {
            io,
            env,
            facts,
            entries: Vec::new(),
            first_index: HashMap::new(),
            applied: Vec::new(),
            custom: Vec::new(),
            magic,
            first_round_done: false,
            last_file: None,
            block: None,
            block_running: false,
            blacklist: None,
            whitelist: None,
            strict: false,
            no_initial_output: false,
            inject_before: Vec::new(),
            inject_after: Vec::new(),
            load_stack: Vec::new(),
            implied: 0,
            plugins: BUILTIN_PLUGINS
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            get: Vec::new(),
            dirty: false,
            origin: Origin::Internal,
        }
    }

    fn finish(self) -> Config {
        Config {
            entries: self.entries,
            applied: self.applied,
            custom: self.custom,
            get: self.get,
            implied: self.implied,
            no_initial_output: self.no_initial_output,
        }
    }

    fn fail(&self, message: impl Into<String>) -> Halt {
        Halt::Fail(ConfigError {
            message: message.into(),
            origin: Some(self.origin.clone()),
        })
    }

    fn log(&mut self, line: &str) {
        let _ = writeln!(self.io.err, "{line}");
    }

    fn log_initial(&mut self, line: &str) {
        if !self.no_initial_output {
            self.log(line);
        }
    }

    fn print(&mut self, bytes: &[u8]) {
        let _ = self.io.out.write_all(bytes);
        let _ = self.io.out.write_all(b"\n");
        let _ = self.io.out.flush();
    }

    fn run(&mut self, argv: Vec<Vec<u8>>) -> Result<(), Halt> {
        // Phase 1: UWSGI_* environment variables.
        let env: Vec<(Vec<u8>, Vec<u8>)> = self.env.clone();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(b"UWSGI_") else {
                continue;
            };
            if INTERNAL_ENV.iter().any(|i| i.as_bytes() == name.as_slice()) {
                continue;
            }
            let key: Vec<u8> = rest
                .iter()
                .map(|&b| {
                    if b == b'_' {
                        b'-'
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .collect();
            self.add(
                key,
                Some(value),
                false,
                false,
                Origin::Env(show(&name).into_owned()),
            )?;
        }
        // Phase 2: dash options in argv order, then positional files.
        let mut scanner = Scanner::new(argv);
        loop {
            let item = {
                let table = TableView {
                    custom: &self.custom,
                };
                scanner.next_option(&table)
            };
            match item {
                None => break,
                Some(Err(e)) => {
                    return Err(Halt::Fail(ConfigError {
                        message: format!("{}\ngetopt_long() error", e.message),
                        origin: Some(Origin::Argv(e.index)),
                    }))
                }
                Some(Ok(opt)) => {
                    self.add(opt.name, opt.value, false, false, Origin::Argv(opt.index))?
                }
            }
        }
        for (idx, word) in scanner.positional().to_vec() {
            if word.first() == Some(&b'[') {
                continue;
            }
            self.origin = Origin::Argv(idx);
            self.load_by_suffix(&word)?;
        }
        // Phases 3-5: deferred expansion.
        self.expand_pass(b'$')?;
        self.expand_pass(b'@')?;
        self.expand_pass(b'%')?;
        // Phase 6: configure.
        self.configure()
    }

    // ---- the list ----------------------------------------------------

    fn push(
        &mut self,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        configured: bool,
        origin: Origin,
    ) -> usize {
        let id = self.entries.len();
        self.first_index.entry(key.clone()).or_insert(id);
        self.entries.push(Entry {
            key,
            value,
            configured,
            origin,
        });
        self.dirty = true;
        id
    }

    /// Value of the first entry with `key` (`None` for a valueless flag).
    fn first_value(&self, key: &[u8]) -> Option<&[u8]> {
        let &i = self.first_index.get(key)?;
        self.entries[i].value.as_deref()
    }

    /// Table rows come first: a custom option named like a real one is
    /// never reached, as in uWSGI's option array.
    fn lookup(&self, key: &[u8]) -> Option<Spec> {
        if let Some(spec) = options::find(key) {
            return Some(Spec::Table(spec));
        }
        self.custom
            .iter()
            .find(|c| c.name == key)
            .map(|c| Spec::Custom(c.clone()))
    }

    /// `uwsgi_opt_get`: unknown keys are fatal in strict mode.
    fn lookup_strict(&self, key: &[u8]) -> Result<Option<Spec>, Halt> {
        let spec = self.lookup(key);
        if spec.is_none() && self.strict {
            return Err(self.fail(format!(
                "[strict-mode] unknown config directive: {}",
                show(key)
            )));
        }
        Ok(spec)
    }

    /// `add_exported_option_do`.
    fn add(
        &mut self,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        configured: bool,
        placeholder_only: bool,
        origin: Origin,
    ) -> Result<(), Halt> {
        self.origin = origin.clone();
        for (list, name) in [
            (&self.blacklist, "blacklist"),
            (&self.whitelist, "whitelist"),
        ] {
            if let Some(list) = list {
                let listed = list
                    .split(|&b| b == b' ')
                    .filter(|t| !t.is_empty())
                    .any(|t| t.eq_ignore_ascii_case(&key));
                if listed == (name == "blacklist") {
                    return Err(self.fail(format!(
                        "uWSGI error: forbidden option \"{}\" (by {name})",
                        show(&key)
                    )));
                }
            }
        }
        if !self.block_running {
            if logic::is_closer(&key) {
                self.block = None;
            }
            if let Some(block) = self.block.clone() {
                return self.feed_block(&block, key, value, origin);
            }
        }
        let id = self.push(key.clone(), value.clone(), configured, origin.clone());
        if placeholder_only {
            if self.lookup(&key).is_some() {
                return Err(self.fail(format!(
                    "you cannot use {} as a placeholder, it is already available as an option",
                    show(&key)
                )));
            }
            self.entries[id].configured = true;
            return Ok(());
        }
        let Some(spec) = self.lookup_strict(&key)? else {
            return Ok(());
        };
        let flags = spec.flags();
        self.implied |= flags;
        if flags & options::flag::NO_INITIAL != 0 {
            self.no_initial_output = true;
        }
        if flags & options::flag::IMMEDIATE != 0 {
            self.apply(&spec, &key, value.as_deref())?;
            self.entries[id].configured = true;
        }
        Ok(())
    }

    fn feed_block(
        &mut self,
        block: &Block,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        origin: Origin,
    ) -> Result<(), Halt> {
        let world = WorldView { r: self };
        let outcome = logic::run(block.cond, &block.arg, value.as_deref(), &world);
        if let Some(line) = outcome.log {
            self.log(&line);
        }
        self.block_running = true;
        let result = outcome
            .values
            .into_iter()
            .try_for_each(|v| self.add(key.clone(), v, false, false, origin.clone()));
        self.block_running = false;
        result
    }

    // ---- applying options ----------------------------------------------

    /// Runs an option's handler (`op->func`); the caller knows it exists.
    fn apply(&mut self, spec: &Spec, key: &[u8], value: Option<&[u8]>) -> Result<(), Halt> {
        let spec = match spec {
            Spec::Custom(c) => return self.apply_custom(c, value),
            Spec::Table(s) => *s,
        };
        let v = value.unwrap_or_default();
        match spec.name {
            "ini" | "ini-paste" | "ini-paste-logged" => self.load_ini(v)?,
            "include" | "inherit" => self.load_by_suffix(v)?,
            "config" => {
                return Err(self.fail(format!("unable to load configuration from {}", show(v))))
            }
            "xml" | "yaml" | "yml" | "json" | "js" => {
                return Err(self.fail(format!(
                    "unable to load configuration from {}: ruwsgi reads ini files only",
                    show(v)
                )))
            }
            "set" | "set-placeholder" | "set-ph" => {
                let Some(eq) = v.iter().position(|&b| b == b'=') else {
                    return Err(self.fail("invalid placeholder/--set value"));
                };
                let origin = self.origin.clone();
                self.add(
                    v[..eq].to_vec(),
                    Some(v[eq + 1..].to_vec()),
                    false,
                    spec.name != "set",
                    origin,
                )?;
            }
            "resolve" => self.resolve_placeholder(v)?,
            "declare-option" | "declare-option2" => self.declare(v)?,
            "strict" => self.strict = bool_value(value),
            "blacklist" => self.blacklist = Some(v.to_vec()),
            "end-blacklist" => self.blacklist = None,
            "whitelist" => self.whitelist = Some(v.to_vec()),
            "end-whitelist" => self.whitelist = None,
            "inject-before" => self.inject_before.push(v.to_vec()),
            "inject-after" => self.inject_after.push(v.to_vec()),
            "print" | "iprint" => self.print(v),
            "version" => {
                let version = self.facts.version.clone();
                self.print(&version);
                return Err(Halt::Exit(0));
            }
            "exit" => return Err(Halt::Exit(value.map(placeholders::atoi).unwrap_or(1))),
            "help" | "usage" => {
                let text = super::show::help(&self.facts.binary_path, &self.custom);
                let _ = self.io.out.write_all(text.as_bytes());
                return Err(Halt::Exit(0));
            }
            "plugins" | "plugin" | "need-plugins" | "need-plugin" => {
                self.load_plugins(spec.name, v)?
            }
            "stop" | "reload" | "pause" | "suspend" | "resume" => {
                return Err(Halt::SignalPidfile {
                    pidfile: v.to_vec(),
                    action: spec.name,
                });
            }
            "get" => self.get.push(v.to_vec()),
            name if logic::opener(name.as_bytes()).is_some() => {
                if self.block.is_some() {
                    return Err(self.fail(format!(
                        "recursive logic in options is not supported (option = {name})"
                    )));
                }
                let cond = logic::opener(name.as_bytes()).unwrap_or(Cond::For);
                self.block = Some(Block {
                    cond,
                    arg: v.to_vec(),
                });
            }
            "socket" | "uwsgi-socket" | "http-socket" | "http11-socket" | "fastcgi-socket"
            | "fastcgi-nph-socket" | "scgi-socket" | "scgi-nph-socket" | "puwsgi-socket"
                if v.is_empty() =>
            {
                return Err(self.fail("invalid/empty uwsgi socket name"));
            }
            _ => {
                if spec.kind == Kind::Int && value.is_some_and(|v| placeholders::atoi(v) < 0) {
                    return Err(self.fail(format!(
                        "invalid value for option \"{}\": must be > 0",
                        show(key)
                    )));
                }
            }
        }
        self.applied.push(Applied {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
            origin: self.origin.clone(),
        });
        Ok(())
    }

    /// `uwsgi_opt_custom`: expands the template and applies each product
    /// directly (products never become list entries).
    fn apply_custom(&mut self, c: &CustomOption, value: Option<&[u8]>) -> Result<(), Halt> {
        let value = value.unwrap_or_default();
        let args: Vec<&[u8]> = if value.is_empty() {
            vec![b""]
        } else {
            value
                .split(|&b| b == b' ')
                .filter(|t| !t.is_empty())
                .collect()
        };
        let count = value.iter().filter(|&&b| b == b' ').count() + 1;
        for piece in c.template.split(|&b| b == b';').filter(|t| !t.is_empty()) {
            let Some(eq) = piece.iter().position(|&b| b == b'=') else {
                break;
            };
            let mut k = piece[..eq].to_vec();
            let mut v = piece[eq + 1..].to_vec();
            for i in 0..count {
                let Some(arg) = args.get(i) else { break };
                let pat = format!("${}", i + 1);
                k = replace_all(&k, pat.as_bytes(), arg);
                v = replace_all(&v, pat.as_bytes(), arg);
            }
            if let Some(spec) = self.lookup_strict(&k)? {
                self.apply(&spec, &k, Some(&v))?;
            }
        }
        Ok(())
    }

    fn declare(&mut self, v: &[u8]) -> Result<(), Halt> {
        let Some(eq) = v.iter().position(|&b| b == b'=') else {
            return Err(self.fail(format!(
                "invalid {} syntax, must be newoption=template",
                show(v)
            )));
        };
        let template = v[eq + 1..].to_vec();
        let has_args = [b"$1", b"$2", b"$3"]
            .iter()
            .any(|p| template.windows(2).any(|w| w == *p));
        self.custom.push(CustomOption {
            name: v[..eq].to_vec(),
            template,
            has_args,
        });
        Ok(())
    }

    fn resolve_placeholder(&mut self, v: &[u8]) -> Result<(), Halt> {
        use std::net::ToSocketAddrs;
        let Some(eq) = v.iter().position(|&b| b == b'=') else {
            return Err(self.fail("invalid resolve syntax, must be placeholder=domain"));
        };
        let name = String::from_utf8_lossy(&v[eq + 1..]).into_owned();
        let ip = (name.as_str(), 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|a| a.is_ipv4()))
            .ok_or_else(|| self.fail(format!("unable to resolve name {name}")))?;
        let origin = self.origin.clone();
        let key = v[..eq].to_vec();
        self.add(
            key,
            Some(ip.ip().to_string().into_bytes()),
            false,
            true,
            origin,
        )
    }

    fn load_plugins(&mut self, option: &str, list: &[u8]) -> Result<(), Halt> {
        for name in list.split(|&b| b == b',').filter(|t| !t.is_empty()) {
            let name = ini::trim(name);
            let base = name.strip_suffix(b"_plugin.so").unwrap_or(name);
            let base = base.rsplit(|&b| b == b'/').next().unwrap_or(base);
            let internal: &[u8] = if base.starts_with(b"python") {
                b"python"
            } else {
                base
            };
            if BUILTIN_PLUGINS.iter().any(|p| p.as_bytes() == internal)
                || base.starts_with(b"router_")
            {
                if !self.plugins.iter().any(|p| p == internal) {
                    self.plugins.push(internal.to_vec());
                }
                continue;
            }
            let msg = format!(
                "!!! UNABLE to load uWSGI plugin: ruwsgi does not provide \"{}\" !!!",
                show(name)
            );
            if option.starts_with("need-") {
                return Err(self.fail(msg));
            }
            let origin = self.origin.clone();
            self.log(&format!("{msg} [{origin}]"));
        }
        Ok(())
    }

    // ---- loading files -------------------------------------------------

    /// `uwsgi_opt_load`: include, inherit and positional files, picked by
    /// suffix; never sets the first-file variables.
    fn load_by_suffix(&mut self, file: &[u8]) -> Result<(), Halt> {
        let saved = self.first_round_done;
        self.first_round_done = true;
        let result = if file.ends_with(b".ini") {
            self.load_ini(file)
        } else if [&b".xml"[..], b".yaml", b".yml", b".json", b".js"]
            .iter()
            .any(|s| file.ends_with(s))
        {
            Err(self.fail(format!(
                "unable to load configuration from {}: ruwsgi reads ini files only",
                show(file)
            )))
        } else {
            Err(self.fail(format!("unable to load configuration from {}", show(file))))
        };
        self.first_round_done = saved;
        result
    }

    /// `uwsgi_opt_load_ini`: fill the magic table, then read the file.
    fn load_ini(&mut self, arg: &[u8]) -> Result<(), Halt> {
        self.fill_magic(arg)?;
        self.ini_config(arg)
    }

    /// Splits `file:section` the way uWSGI does (the last `:`, after the
    /// last `/` for scheme URLs).
    fn split_section(arg: &[u8]) -> (&[u8], Option<&[u8]>) {
        let search_from = if sources::scheme_of(arg).is_some() {
            arg.iter().rposition(|&b| b == b'/').unwrap_or(0)
        } else {
            0
        };
        match arg[search_from..].iter().rposition(|&b| b == b':') {
            Some(i) => (&arg[..search_from + i], Some(&arg[search_from + i + 1..])),
            None => (arg, None),
        }
    }

    /// `config_magic_table_fill`.
    fn fill_magic(&mut self, arg: &[u8]) -> Result<(), Halt> {
        let is_scheme = arg == b"-" || sources::scheme_of(arg).is_some();
        let (file, section) = Self::split_section(arg);
        self.magic.set(b'o', file.to_vec());
        if is_scheme {
            return Ok(());
        }
        if !file.is_empty() {
            let path = OsStr::from_bytes(file);
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let full: Vec<u8> = if is_link {
                if file.first() == Some(&b'/') {
                    file.to_vec()
                } else {
                    [&self.facts.cwd[..], b"/", file].concat()
                }
            } else {
                match std::fs::canonicalize(path) {
                    Ok(p) => p.as_os_str().as_bytes().to_vec(),
                    Err(e) => {
                        return Err(self.fail(format!(
                            "realpath() of {} failed: {}",
                            show(file),
                            logic::strerror(&e)
                        )))
                    }
                }
            };
            self.magic.set(b'b', self.facts.binary_path.clone());
            self.magic.set(b'j', placeholders::djb33x_hex(&full));
            if let Ok(m) = std::fs::symlink_metadata(OsStr::from_bytes(&full)) {
                self.magic.set(b'i', m.ino().to_string());
            }
            let slash = full
                .iter()
                .rposition(|&b| b == b'/')
                .map(|i| i + 1)
                .unwrap_or(0);
            let s = full[slash..].to_vec();
            let d = full[..slash].to_vec();
            let d_trim = d.strip_suffix(b"/").unwrap_or(&d);
            let c = match d_trim.iter().rposition(|&b| b == b'/') {
                Some(i) => d_trim[i + 1..].to_vec(),
                None => Vec::new(),
            };
            for n in b'0'..=b'9' {
                self.magic.set(n, Vec::new());
            }
            for (n, comp) in
                (b'0'..=b'9').zip(d_trim.split(|&b| b == b'/').filter(|t| !t.is_empty()))
            {
                self.magic.set(n, comp.to_vec());
            }
            let (n, e) = match s.iter().rposition(|&b| b == b'.') {
                Some(i) => (s[..i].to_vec(), s[i + 1..].to_vec()),
                None => (s.clone(), Vec::new()),
            };
            self.magic.set(b'p', full.clone());
            self.magic.set(b's', s);
            self.magic.set(b'd', d);
            self.magic.set(b'c', c);
            self.magic.set(b'n', n);
            self.magic.set(b'e', e);
        }
        self.magic.set(b'x', section.unwrap_or_default().to_vec());
        if !self.first_round_done {
            for (upper, lower) in [
                (b'O', b'o'),
                (b'D', b'd'),
                (b'S', b's'),
                (b'P', b'p'),
                (b'C', b'c'),
                (b'E', b'e'),
                (b'N', b'n'),
                (b'X', b'x'),
                (b'I', b'i'),
                (b'J', b'j'),
            ] {
                let v = self.magic.get(lower).to_vec();
                self.magic.set(upper, v);
            }
            self.first_round_done = true;
        }
        Ok(())
    }

    /// `uwsgi_ini_config`: read the file (magic-substituted) and add the
    /// key/value lines of the requested section in place.
    fn ini_config(&mut self, arg: &[u8]) -> Result<(), Halt> {
        let (file, section) = Self::split_section(arg);
        let section: Vec<u8> = match section {
            Some(s) if !s.is_empty() => s.to_vec(),
            _ => b"uwsgi".to_vec(),
        };
        let reuse = section_only(arg);
        let file: Vec<u8> = if reuse {
            match &self.last_file {
                Some(f) => f.clone(),
                None => {
                    return Err(self.fail(format!(
                        "cannot read section \"{}\": no ini file was loaded before",
                        show(&section)
                    )))
                }
            }
        } else {
            file.to_vec()
        };
        if !file.is_empty() && !reuse {
            self.log_initial(&format!(
                "[uWSGI] getting INI configuration from {}",
                show(&file)
            ));
        }
        // A plain file is identified by its real path (`%p`), so `ini = %p`
        // is caught at once; other sources by their name.
        let identity: Vec<u8> = if sources::scheme_of(&file).is_none() && file != b"-" {
            self.magic.get(b'p').to_vec()
        } else {
            file.clone()
        };
        let frame = LoadFrame {
            identity,
            section: section.clone(),
            shown: format!("{}:{}", show(&file), show(&section)),
        };
        if self.load_stack.contains(&frame) || self.load_stack.len() >= MAX_LOAD_DEPTH {
            let mut chain: Vec<&str> = self.load_stack.iter().map(|f| f.shown.as_str()).collect();
            chain.push(&frame.shown);
            return Err(self.fail(format!(
                "config files include each other in a loop: {}",
                chain.join(" -> ")
            )));
        }
        let text = self.read_config_text(&file)?;
        if !reuse {
            self.last_file = Some(file.clone());
        }
        let substituted = placeholders::magic_sub(&text, &self.magic);
        drop(text);
        let parsed = ini::read(&substituted.text, &section);
        let name: Arc<str> = Arc::from(show(&file).as_ref());
        let lines: Vec<(Vec<u8>, Vec<u8>, usize)> = parsed
            .lines
            .iter()
            .map(|l| {
                (
                    l.key.to_vec(),
                    l.value.to_vec(),
                    substituted.source_line(l.line),
                )
            })
            .collect();
        let found = parsed.found;
        self.load_stack.push(frame);
        let mut result = Ok(());
        for (key, value, line) in lines {
            result = self.add(
                key,
                Some(value),
                false,
                false,
                Origin::File {
                    file: name.clone(),
                    line,
                },
            );
            if result.is_err() {
                break;
            }
        }
        self.load_stack.pop();
        result?;
        if !found {
            self.log(&format!(
                "*** WARNING: Can't find section \"{}\" in INI configuration file {} ***",
                show(&section),
                show(&file)
            ));
        }
        Ok(())
    }

    /// `uwsgi_open_and_read` with injection: the raw config text.
    fn read_config_text(&mut self, file: &[u8]) -> Result<Vec<u8>, Halt> {
        let body = sources::read(file).map_err(|m| self.fail(m))?;
        if self.inject_before.is_empty() && self.inject_after.is_empty() {
            return Ok(body);
        }
        let mut text = Vec::new();
        for f in self.inject_before.clone() {
            text.extend(sources::read(&f).map_err(|m| self.fail(m))?);
        }
        text.extend(body);
        for f in self.inject_after.clone() {
            text.extend(sources::read(&f).map_err(|m| self.fail(m))?);
        }
        Ok(text)
    }

    // ---- expansion and configure -------------------------------------

    fn expand_pass(&mut self, symbol: u8) -> Result<(), Halt> {
        for i in 0..self.entries.len() {
            if self.entries[i].configured {
                continue;
            }
            let Some(mut value) = self.entries[i].value.take() else {
                continue;
            };
            let result = {
                let this = &*self;
                placeholders::expand(&mut value, symbol, |key, current| {
                    this.expand_hook(symbol, key, i, current)
                })
            };
            self.entries[i].value = Some(value);
            if let Err(e) = result {
                self.origin = self.entries[i].origin.clone();
                return Err(self.fail(e.to_string()));
            }
        }
        Ok(())
    }

    fn expand_hook(
        &self,
        symbol: u8,
        key: &[u8],
        me: usize,
        current: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        match symbol {
            b'$' => Ok(self.getenv(key)),
            b'@' => {
                let mut content = sources::read(key)?;
                if matches!(content.last(), Some(b'\n') | Some(b'\r')) {
                    content.pop();
                }
                Ok(Some(content))
            }
            _ => {
                let value_of = |k: &[u8]| -> Option<Vec<u8>> {
                    let &i = self.first_index.get(k)?;
                    if i == me {
                        Some(current.to_vec())
                    } else {
                        self.entries[i].value.clone()
                    }
                };
                if key.contains(&b' ') {
                    Ok(placeholders::placeholder_math(key, value_of))
                } else {
                    Ok(value_of(key))
                }
            }
        }
    }

    fn getenv(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// `uwsgi_configure`: apply every entry not yet applied, in order.
    fn configure(&mut self) -> Result<(), Halt> {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].configured {
                i += 1;
                continue;
            }
            self.dirty = false;
            let customs_before = self.custom.len();
            let key = self.entries[i].key.clone();
            let value = self.entries[i].value.clone();
            self.origin = self.entries[i].origin.clone();
            let known = match self.lookup_strict(&key)? {
                Some(spec) => {
                    self.apply(&spec, &key, value.as_deref())?;
                    true
                }
                None => false,
            };
            self.entries[i].configured = known;
            if known {
                self.handler_side_effects(i);
            }
            // uWSGI restarts from the top when the list grew; that only
            // changes anything when a new custom option makes an earlier
            // unknown key known.
            if self.dirty && self.custom.len() != customs_before {
                i = 0;
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

impl Resolver<'_> {
    /// Some uWSGI handlers cut the stored value in place while parsing it,
    /// and `--show-config` prints what is left; reproduce the ones seen in
    /// real configs.
    fn handler_side_effects(&mut self, i: usize) {
        let entry = &mut self.entries[i];
        if entry.key == b"cron2" {
            // `key=val,... command`: the command is split off at the space.
            if let Some(v) = entry.value.as_mut() {
                if let Some(space) = v.iter().position(|&b| b == b' ') {
                    if v[..space].contains(&b'=') {
                        v.truncate(space);
                    }
                }
            }
        }
    }
}

/// `ini = :section` (no file part): reuse the last file read.
fn section_only(arg: &[u8]) -> bool {
    sources::scheme_of(arg).is_none() && arg.first() == Some(&b':')
}

fn replace_all(haystack: &[u8], pat: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(pat) {
            out.extend_from_slice(with);
            i += pat.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// uWSGI's boolean test: off only for false/off/no (any case) or exactly 0.
pub fn bool_value(value: Option<&[u8]>) -> bool {
    match value {
        None => true,
        Some(v) => {
            !(v.eq_ignore_ascii_case(b"false")
                || v.eq_ignore_ascii_case(b"off")
                || v.eq_ignore_ascii_case(b"no")
                || v == b"0")
        }
    }
}

/// A known option: a table row or a custom option.
#[derive(Debug, Clone)]
enum Spec {
    Table(&'static OptSpec),
    Custom(CustomOption),
}

impl Spec {
    fn flags(&self) -> u32 {
        match self {
            Spec::Table(s) => s.flags,
            Spec::Custom(_) => options::flag::IMMEDIATE,
        }
    }
}

/// The option table as getopt sees it: the static rows, then custom ones.
struct TableView<'a> {
    custom: &'a [CustomOption],
}

impl OptionTable for TableView<'_> {
    fn long_options(&self) -> Vec<(&[u8], Arg)> {
        let mut v: Vec<(&[u8], Arg)> = options::OPTIONS
            .iter()
            .map(|o| (o.name.as_bytes(), o.arg))
            .collect();
        v.extend(self.custom.iter().map(|c| {
            (
                c.name.as_slice(),
                if c.has_args { Arg::Required } else { Arg::None },
            )
        }));
        v
    }

    fn short_option(&self, c: u8) -> Option<(&[u8], Arg)> {
        options::by_short(c).map(|o| (o.name.as_bytes(), o.arg))
    }
}

struct WorldView<'a, 'io> {
    r: &'a Resolver<'io>,
}

impl World for WorldView<'_, '_> {
    fn getenv(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.r.getenv(name)
    }

    fn first_opt(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.r.first_value(key).map(<[u8]>::to_vec)
    }

    fn plugin_loaded(&self, name: &[u8]) -> bool {
        self.r.plugins.iter().any(|p| p == name)
    }

    fn hostname(&self) -> &[u8] {
        &self.r.facts.hostname
    }

    fn is_reload(&self) -> bool {
        self.r.env.iter().any(|(k, _)| k == b"UWSGI_RELOADS")
    }
}
