//! What ruwsgi does with each option of the table: implemented, accepted
//! and ignored (it makes no difference here), or not supported (accepted by
//! the config system, shown by `--show-config`, but without the effect it
//! has in uWSGI). Options without a row are not supported.
//!
//! `docs/options.md` is generated from this table and the option table; a
//! test fails when it is stale (`RUWSGI_BLESS=1 cargo test --lib
//! options_doc` regenerates it). Another test fails when a role's typed
//! config reads an option that has no row here, so the table follows the
//! code. A role that starts warns once per option marked not supported.

use super::options::{Category, OPTIONS};

/// Support status of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The option does what it does in uWSGI (the note says where it differs).
    Implemented,
    /// Accepted without effect, because ruwsgi needs none (plugins are built
    /// in, for example).
    Ignored,
    /// Accepted by the config system but without its uWSGI effect.
    NotSupported,
}

use Support::{Ignored as Ign, Implemented as Imp, NotSupported as No};

const ROUTER: &str = "in the HTTP router (`http =`), not in workers";
const MIME: &str = "also for `static:` routes; built-in types fill the gaps";

/// Rows: option, status, note. Aliases have rows of their own.
#[rustfmt::skip]
static SUPPORT: &[(&str, Support, &str)] = &[
    // the config system itself
    ("ini", Imp, ""), ("include", Imp, ""), ("inherit", Imp, ""),
    ("inject-before", Imp, ""), ("inject-after", Imp, ""),
    ("set", Imp, ""), ("set-placeholder", Imp, ""), ("set-ph", Imp, ""),
    ("get", Imp, ""), ("declare-option", Imp, ""), ("declare-option2", Imp, ""),
    ("resolve", Imp, ""), ("strict", Imp, ""),
    ("for", Imp, ""), ("for-glob", Imp, ""), ("for-times", Imp, ""),
    ("for-readline", Imp, ""), ("endfor", Imp, ""), ("end-for", Imp, ""),
    ("if-opt", Imp, ""), ("if-not-opt", Imp, ""), ("if-env", Imp, ""),
    ("if-not-env", Imp, ""), ("ifenv", Imp, ""), ("if-reload", Imp, ""),
    ("if-not-reload", Imp, ""), ("if-hostname", Imp, ""), ("if-not-hostname", Imp, ""),
    ("if-hostname-match", Imp, ""), ("if-not-hostname-match", Imp, ""),
    ("if-exists", Imp, ""), ("if-not-exists", Imp, ""), ("ifexists", Imp, ""),
    ("if-plugin", Imp, "true for the built-in python, http, corerouter and router plugins"),
    ("if-not-plugin", Imp, ""), ("ifplugin", Imp, ""),
    ("if-file", Imp, ""), ("if-not-file", Imp, ""), ("if-dir", Imp, ""),
    ("if-not-dir", Imp, ""), ("ifdir", Imp, ""), ("if-directory", Imp, ""),
    ("endif", Imp, ""), ("end-if", Imp, ""),
    ("blacklist", Imp, ""), ("end-blacklist", Imp, ""),
    ("whitelist", Imp, ""), ("end-whitelist", Imp, ""),
    ("help", Imp, ""), ("usage", Imp, ""), ("version", Imp, ""),
    ("dump-options", Imp, ""), ("show-config", Imp, ""),
    ("print", Imp, ""), ("iprint", Imp, ""), ("exit", Imp, ""),
    ("need-plugin", Imp, "a plugin ruwsgi does not provide is an error"),
    ("need-plugins", Imp, "a plugin ruwsgi does not provide is an error"),
    ("stop", Imp, "signals the pid in the pidfile"), ("reload", Imp, "signals the pid in the pidfile"),
    ("pause", Imp, "signals the pid in the pidfile"), ("suspend", Imp, "signals the pid in the pidfile"),
    ("resume", Imp, "signals the pid in the pidfile"),
    ("privileged-binary-patch", Imp, ""), ("privileged-binary-patch-arg", Imp, ""),
    ("log-date", Imp, "dates `--show-config` and the emperor's lines only"),
    ("logdate", Imp, "dates `--show-config` and the emperor's lines only"),
    ("log-prefix", Imp, "prefixes `--show-config` only"),
    ("plugins", Ign, "built in; a plugin ruwsgi does not provide gets a warning"),
    ("plugin", Ign, "built in; a plugin ruwsgi does not provide gets a warning"),
    ("plugins-dir", Ign, "plugins are built in"), ("plugin-dir", Ign, "plugins are built in"),
    ("autoload", Ign, "plugins are built in"),
    ("xml", No, "refused: ruwsgi reads ini files only"), ("xmlconfig", No, "refused: ruwsgi reads ini files only"),
    ("yaml", No, "refused: ruwsgi reads ini files only"), ("yml", No, "refused: ruwsgi reads ini files only"),
    ("json", No, "refused: ruwsgi reads ini files only"), ("js", No, "refused: ruwsgi reads ini files only"),
    ("config", No, "refused: ruwsgi reads ini files only"),
    ("ini-paste", No, "read as an ini file; no Paste app is loaded"),
    ("ini-paste-logged", No, "read as an ini file; no Paste app is loaded"),
    // sockets
    ("socket", Imp, "unix path, `@abstract`, `host:port`, `:port`, `fd://N`"),
    ("uwsgi-socket", Imp, ""), ("http-socket", Imp, "HTTP/1.1 with keep-alive"),
    ("http11-socket", Imp, ""), ("listen", Imp, ""),
    ("no-defer-accept", Imp, "TCP sockets defer accept for `socket-timeout` seconds otherwise, as in uWSGI"),
    ("chmod-socket", Imp, ""), ("chmod", Imp, ""), ("vacuum", Imp, ""),
    ("socket-timeout", Imp, ""),
    ("chown-socket", Imp, ""),
    // processes
    ("master", Imp, ""), ("processes", Imp, ""), ("workers", Imp, ""),
    ("threads", Imp, ""), ("enable-threads", Imp, ""),
    ("lazy-apps", Imp, ""), ("lazy", Imp, ""), ("need-app", Imp, ""),
    ("harakiri", Imp, ""), ("max-requests", Imp, ""), ("reload-on-rss", Imp, ""),
    ("min-worker-lifetime", Imp, ""), ("touch-reload", Imp, ""),
    ("pidfile", Imp, ""), ("chdir", Imp, ""),
    ("die-on-term", Imp, "SIGTERM is a graceful shutdown unless `die-on-term = false`"),
    ("reload-mercy", Imp, "the emperor's wait for a vassal to stop"),
    ("single-interpreter", Ign, "ruwsgi always runs one interpreter per process"),
    ("thunder-lock", Ign, "tunes how uWSGI workers share accept(); no effect on behaviour"),
    ("py-call-osafterfork", Ign, "ruwsgi always runs Python's after-fork hooks"),
    ("ignore-sigpipe", Ign, "SIGPIPE is always ignored"),
    ("uid", Imp, "dropped after every socket is bound"),
    ("gid", Imp, "dropped after every socket is bound"),
    ("daemonize", Imp, ""), ("logto", Imp, ""),
    // logging
    ("disable-logging", Imp, ""),
    // python
    ("module", Imp, ""), ("wsgi", Imp, ""), ("wsgi-file", Imp, ""), ("file", Imp, ""),
    ("callable", Imp, ""), ("mount", Imp, "apps share one interpreter"),
    ("manage-script-name", Imp, ""),
    ("home", Imp, ""), ("virtualenv", Imp, ""), ("venv", Imp, ""), ("pyhome", Imp, ""),
    ("pythonpath", Imp, ""), ("python-path", Imp, ""), ("pp", Imp, ""),
    ("env", Imp, ""),
    ("py-autoreload", Imp, ""), ("python-autoreload", Imp, ""),
    ("py-auto-reload", Imp, ""), ("python-auto-reload", Imp, ""),
    ("py-auto-reload-ignore", Imp, ""),
    // requests
    ("buffer-size", Imp, ""), ("post-buffering", Imp, ""), ("max-vars", Imp, ""),
    ("static-map", Imp, ""), ("static-map2", Imp, ""), ("check-static", Imp, ""),
    ("mimefile", Imp, MIME), ("mime-file", Imp, MIME),
    // the HTTP router
    ("http", Imp, ""), ("httprouter", Imp, ""), ("http-to", Imp, ""),
    ("http-fallback", Imp, ""), ("http-var", Imp, ""),
    ("http-modifier1", Imp, ""), ("http-modifier2", Imp, ""),
    ("http-timeout", Imp, ""), ("http-headers-timeout", Imp, ""),
    ("http-connect-timeout", Imp, ""), ("http-gracetime", Imp, ""),
    ("http-keepalive", Imp, "keep-alive is on by default; `0` turns it off"),
    ("http-manage-expect", Imp, ""), ("http-auto-chunked", Imp, ""),
    ("http-raw-body", Imp, ""), ("http-buffer-size", Imp, ""),
    ("http-server-name-as-http-host", Imp, ""), ("http-quiet", Imp, ""),
    ("http-processes", Imp, "each gateway process keeps its own backend connections"),
    ("http-workers", Imp, "each gateway process keeps its own backend connections"),
    // routing: every chain and subject, see `routed` below
    // the emperor
    ("emperor", Imp, "directories and globs"), ("emperor-wrapper", Imp, ""),
    ("emperor-wrapper-override", Imp, ""), ("emperor-wrapper-fallback", Imp, ""),
    ("emperor-nofollow", Imp, ""), ("emperor-freq", Imp, ""),
    ("emperor-required-heartbeat", Imp, ""), ("emperor-curse-tolerance", Imp, ""),
    ("emperor-pidfile", Imp, ""), ("emperor-tyrant", Imp, ""),
    ("emperor-tyrant-nofollow", Imp, ""), ("emperor-stats", Imp, ""),
    ("emperor-stats-server", Imp, ""), ("emperor-broodlord", Imp, ""),
    ("emperor-throttle", Imp, ""), ("emperor-max-throttle", Imp, ""),
    ("emperor-magic-exec", Imp, ""), ("emperor-on-demand-extension", Imp, ""),
    ("emperor-on-demand-ext", Imp, ""), ("emperor-on-demand-directory", Imp, ""),
    ("emperor-on-demand-dir", Imp, ""), ("emperor-on-demand-exec", Imp, ""),
    ("emperor-extra-extension", Imp, ""), ("emperor-extra-ext", Imp, ""),
    ("emperor-no-blacklist", Imp, ""), ("emperor-graceful-shutdown", Imp, ""),
    ("vassals-inherit", Imp, ""), ("vassals-include", Imp, ""),
    ("vassals-inherit-before", Imp, ""), ("vassals-include-before", Imp, ""),
    ("vassals-set", Imp, ""), ("vassal-set", Imp, ""),
    ("binary-path", Imp, "the program the emperor runs for each vassal"),
    ("stats-minified", Imp, "for `emperor-stats` only"), ("stats-min", Imp, "for `emperor-stats` only"),
];

/// The support status of an option and its note; options without a row
/// are not supported. Routing options (every chain and subject) are
/// implemented in the HTTP router.
pub fn support(name: &str) -> (Support, &'static str) {
    if let Some(&(_, s, note)) = SUPPORT.iter().find(|(n, _, _)| *n == name) {
        return (s, note);
    }
    if is_route(name) {
        return (Support::Implemented, ROUTER);
    }
    (Support::NotSupported, "")
}

/// `route`, `route-host`, `final-route-if`, ...: the rule options of the
/// four routing chains (`router-list` is not one).
fn is_route(name: &str) -> bool {
    let rest = ["final-", "error-", "response-", ""]
        .iter()
        .find_map(|p| name.strip_prefix(p)?.strip_prefix("route"));
    matches!(
        rest,
        Some(
            "" | "-host"
                | "-uri"
                | "-qs"
                | "-remote-addr"
                | "-user-agent"
                | "-referer"
                | "-remote-user"
                | "-label"
                | "-if"
                | "-if-not"
                | "-run"
                | "-status"
        )
    ) && name != "route-status"
}

/// One warning line per distinct option in `keys` that is not supported,
/// in order of first appearance.
pub fn warnings<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for key in keys {
        let Some(spec) = super::options::find(key) else {
            continue;
        };
        if support(spec.name).0 == Support::NotSupported && !seen.contains(&spec.name) {
            seen.push(spec.name);
        }
    }
    seen.iter()
        .map(|name| {
            let note = match support(name).1 {
                "" => String::new(),
                note => format!(" ({note})"),
            };
            format!("*** WARNING: option \"{name}\" is not supported by ruwsgi and has no effect{note} ***")
        })
        .collect()
}

fn category_title(c: Category) -> &'static str {
    match c {
        Category::Config => "Configuration",
        Category::Sockets => "Sockets",
        Category::Processes => "Processes",
        Category::Logging => "Logging",
        Category::Python => "Python",
        Category::Http => "HTTP router",
        Category::Routing => "Routing",
        Category::Emperor => "Emperor",
        Category::Other => "Other",
    }
}

const CATEGORIES: [Category; 9] = [
    Category::Config,
    Category::Sockets,
    Category::Processes,
    Category::Logging,
    Category::Python,
    Category::Http,
    Category::Routing,
    Category::Emperor,
    Category::Other,
];

/// `docs/options.md`.
pub fn render_markdown() -> String {
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<_> = OPTIONS.iter().filter(|o| seen.insert(o.name)).collect();
    let count = |s| rows.iter().filter(|o| support(o.name).0 == s).count();
    let mut md = String::new();
    md.push_str("# Options supported by ruwsgi\n\n");
    md.push_str(
        "Generated from the option table (`src/config/options.rs`) and the support table\n\
         (`src/config/support.rs`) by `RUWSGI_BLESS=1 cargo test --lib options_doc`; do not\n\
         edit by hand.\n\n\
         Every option of uWSGI 2.0.21's core and of the plugins ruwsgi replaces (python,\n\
         http, corerouter, router_*, emperor) is accepted on the command line, in ini files\n\
         and in `UWSGI_*` variables, and shown by `--show-config` and `--get` as uWSGI shows\n\
         it. What ruwsgi then does with it:\n\n",
    );
    md.push_str(&format!(
        "- **implemented** ({}): does what it does in uWSGI (a note says where it differs);\n\
         - **accepted and ignored** ({}): makes no difference in ruwsgi, by design;\n\
         - **not supported** ({}): accepted but without its uWSGI effect. A process that\n\
         \x20 starts with one of these prints `*** WARNING: option \"NAME\" is not supported by\n\
         \x20 ruwsgi and has no effect ***` once per option.\n\n",
        count(Support::Implemented),
        count(Support::Ignored),
        count(Support::NotSupported)
    ));
    md.push_str("## Implemented, and accepted and ignored\n\n");
    for cat in CATEGORIES {
        let supported: Vec<_> = rows
            .iter()
            .filter(|o| o.category == cat && support(o.name).0 != Support::NotSupported)
            .collect();
        if supported.is_empty() {
            continue;
        }
        md.push_str(&format!(
            "### {}\n\n| option | status | what it does |\n|---|---|---|\n",
            category_title(cat)
        ));
        for o in supported {
            let (s, note) = support(o.name);
            let status = match s {
                Support::Implemented => "implemented",
                _ => "ignored",
            };
            let short = o
                .short
                .map(|c| format!(" (`-{}`)", c as char))
                .unwrap_or_default();
            let help = o.help.replace('|', "\\|");
            let note = if note.is_empty() {
                String::new()
            } else {
                format!(" ({})", note.replace('|', "\\|"))
            };
            md.push_str(&format!(
                "| `{}`{short} | {status} | {help}{note} |\n",
                o.name
            ));
        }
        md.push('\n');
    }
    md.push_str("## Not supported\n\n");
    for cat in CATEGORIES {
        let names: Vec<String> = rows
            .iter()
            .filter(|o| o.category == cat && support(o.name).0 == Support::NotSupported)
            .map(|o| {
                let (_, note) = support(o.name);
                if note.is_empty() {
                    format!("`{}`", o.name)
                } else {
                    format!("`{}` ({note})", o.name)
                }
            })
            .collect();
        if names.is_empty() {
            continue;
        }
        md.push_str(&format!(
            "**{}**: {}.\n\n",
            category_title(cat),
            names.join(", ")
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_doc() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/options.md");
        let doc = render_markdown();
        if std::env::var_os("RUWSGI_BLESS").is_some() {
            std::fs::write(path, &doc).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == doc,
            "docs/options.md is stale: regenerate it with `RUWSGI_BLESS=1 cargo test --lib options_doc`"
        );
    }

    #[test]
    fn rows_name_real_options_once() {
        for (i, (name, _, _)) in SUPPORT.iter().enumerate() {
            assert!(
                super::super::options::find(name.as_bytes()).is_some(),
                "{name}: not an option"
            );
            assert!(
                !SUPPORT[..i].iter().any(|(n, _, _)| n == name),
                "{name}: two rows"
            );
        }
    }

    #[test]
    fn routing_options() {
        for name in [
            "route",
            "route-host",
            "route-run",
            "final-route-status",
            "error-route-if-not",
            "response-route-label",
        ] {
            assert_eq!(support(name).0, Support::Implemented, "{name}");
        }
        for name in ["route-status", "router-list", "routers-list"] {
            assert_eq!(support(name).0, Support::NotSupported, "{name}");
        }
    }

    /// Source files where roles read option values by name.
    const READERS: &[&str] = &[
        "src/config/model.rs",
        "src/config/model_router.rs",
        "src/config/vassal.rs",
        "src/emperor/config.rs",
        "src/master/mod.rs",
        "src/run.rs",
    ];

    /// Option names a reader passes to a lookup: `.last("x")`, `&["x", "y"]`,
    /// `(cfg, &["x"])` ... on one line (long literal lists, such as the
    /// options that make an instance runnable, are not lookups).
    fn looked_up(text: &str) -> Vec<String> {
        let call =
            regex::Regex::new(r#"(?:\.[a-z_]+\(|&\[)[ \t]*"[^"\n]*"(?:[ \t]*,[ \t]*"[^"\n]*")*"#)
                .unwrap();
        let lit = regex::Regex::new(r#""([a-z0-9][a-z0-9-]*)""#).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or(text);
        call.find_iter(code)
            .flat_map(|m| {
                lit.captures_iter(m.as_str())
                    .map(|c| c[1].to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|n| super::super::options::find(n.as_bytes()).is_some())
            .collect()
    }

    #[test]
    fn every_option_a_role_reads_has_a_row() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut missing = Vec::new();
        for file in READERS {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            for name in looked_up(&text) {
                if !SUPPORT.iter().any(|(n, _, _)| *n == name) && !is_route(&name) {
                    missing.push(format!("{name} ({file})"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "options read by a role without a row in src/config/support.rs: {missing:?}"
        );
    }

    #[test]
    fn every_implemented_option_appears_in_the_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut code = String::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let skip = ["options.rs", "support.rs", "cli.rs", "man.rs"];
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs")
                    && !skip.iter().any(|s| p.ends_with(s))
                {
                    code.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        for (name, s, _) in SUPPORT {
            if *s == Support::Implemented {
                assert!(
                    code.contains(&format!("\"{name}\"")),
                    "{name} is marked implemented but no code names it"
                );
            }
        }
    }

    #[test]
    fn warnings_once_per_unsupported_option() {
        let keys: [&[u8]; 6] = [
            b"cron",
            b"socket",
            b"cron",
            b"spooler",
            b"plugins",
            b"not-an-option",
        ];
        let w = warnings(keys);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"cron\""), "{}", w[0]);
        assert!(w[1].contains("\"spooler\""), "{}", w[1]);
    }
}
