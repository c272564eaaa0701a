//! Routing actions: the `name:args` half of a rule, parsed once at start
//! (spec §5.8). Each implemented action is one [`Action`] variant; a name
//! uWSGI knows but ruwsgi does not implement is refused with
//! [`ActionError::Unsupported`] (so a config never silently loses a rule),
//! an unknown name with uWSGI's own `unable to register route`.
//!
//! Arguments keep their `$N`/`${VAR}` templates; they are substituted when
//! the rule runs ([`super::subst`]).

/// Which request variable a `set*` action appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetVar {
    Method,
    Uri,
    PathInfo,
    ScriptName,
    RemoteAddr,
    DocRoot,
    Scheme,
    App,
    Home,
    /// `setfile`: uWSGI 2.0.21 appends `UWSGI_HOME` (sic), reproduced.
    File,
    /// `setuser`: the value up to the first `:`.
    User,
}

impl SetVar {
    /// The variable name appended.
    pub fn key(self) -> &'static [u8] {
        match self {
            SetVar::Method => b"REQUEST_METHOD",
            SetVar::Uri => b"REQUEST_URI",
            SetVar::PathInfo => b"PATH_INFO",
            SetVar::ScriptName => b"SCRIPT_NAME",
            SetVar::RemoteAddr => b"REMOTE_ADDR",
            SetVar::DocRoot => b"DOCUMENT_ROOT",
            SetVar::Scheme => b"UWSGI_SCHEME",
            SetVar::App => b"UWSGI_APPID",
            SetVar::Home | SetVar::File => b"UWSGI_HOME",
            SetVar::User => b"REMOTE_USER",
        }
    }
}

/// What `basicauth` checks credentials against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `USER:PASS` (the password may be empty).
    Pair(Vec<u8>),
    /// An htpasswd-like file (only `{SHA}` entries are understood).
    File(Vec<u8>),
}

/// One parsed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `continue:` / `last:`.
    Continue,
    /// `break:` — with 3 or more bytes, a status line to send.
    Break {
        status: Option<Vec<u8>>,
    },
    /// `return:NNN` / `break-with-status:NNN`.
    Return {
        status: Vec<u8>,
    },
    /// `goto:LABEL` — `number` is the argument's `atoi`, used when no label
    /// has the (substituted) name.
    Goto {
        label: Vec<u8>,
        number: usize,
    },
    Log(Vec<u8>),
    DoNotLog,
    /// `donotoffload:` (no offloading in ruwsgi: nothing to do).
    DoNotOffload,
    LogVar {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    AddVar {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Set {
        var: SetVar,
        value: Vec<u8>,
    },
    FixPathInfo,
    SetModifier1(u8),
    SetModifier2(u8),
    AddHeader(Vec<u8>),
    DelHeader(Vec<u8>),
    /// `clearheaders:` / `resetheaders:` with the new status line.
    ClearHeaders(Vec<u8>),
    DisableHeaders,
    Send {
        text: Vec<u8>,
        crlf: bool,
    },
    Chdir(Vec<u8>),
    /// `uwsgi:ADDR,M1,M2[,APPID]` (and `proxyuwsgi:`); `addr` empty is the
    /// modifier-only form that keeps the request local.
    Uwsgi {
        addr: Vec<u8>,
        modifier1: u8,
        modifier2: u8,
        appid: Option<Vec<u8>>,
    },
    /// `http:ADDR[,HOST[,URI]]`.
    Http {
        addr: Vec<u8>,
        host: Option<Vec<u8>>,
        uri: Option<Vec<u8>>,
    },
    Redirect {
        url: Vec<u8>,
        permanent: bool,
    },
    Rewrite {
        target: Vec<u8>,
        last: bool,
    },
    Static {
        path: Vec<u8>,
        next: bool,
    },
    BasicAuth {
        realm: Vec<u8>,
        credentials: Credentials,
        next: bool,
    },
}

/// Why an action is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No `:` after the action name.
    #[error("invalid route syntax")]
    NoColon,
    /// Not an action uWSGI knows (uWSGI: `unable to register route`).
    #[error("unknown routing action \"{0}\"")]
    Unknown(String),
    /// Known to uWSGI, not implemented by ruwsgi.
    #[error("routing action \"{0}\" is not supported by ruwsgi")]
    Unsupported(String),
    /// `setvar` does not exist in uWSGI 2.0.21.
    #[error("routing action \"setvar\" does not exist in uWSGI 2.0 (use addvar:KEY=VALUE)")]
    SetVar,
    /// The arguments do not fit the action, with uWSGI's message.
    #[error("{0}")]
    Syntax(String),
}

/// Actions of uWSGI 2.0.21 (core and the router plugins) that ruwsgi
/// does not implement.
const UNSUPPORTED: &[&str] = &[
    "signal",
    "setprocname",
    "alarm",
    "harakiri",
    "+",
    "-",
    "*",
    "/",
    "flush",
    "fixcl",
    "forcecl",
    "file",
    "file-next",
    "sendfile",
    "sendfile-next",
    "fastfile",
    "fastfile-next",
    "cache",
    "cache-continue",
    "cachestore",
    "cache-store",
    "cachevar",
    "cacheset",
    "cacheinc",
    "cachedec",
    "cachemul",
    "cachediv",
    "proxyhttp",
    "httpdumb",
    "httpconnect",
    "proxyhttpconnect",
    "gzip",
    "chunked",
    "template",
    "toupper",
    "xattr",
    "rpc",
    "rpcnext",
    "rpcret",
    "rpcblob",
    "rpcvar",
    "rpcraw",
    "memcached",
    "memcachedstore",
    "redis",
    "redisstore",
    "spnego",
    "ldapauth",
    "radius",
    "hash",
    "metric",
    "metricinc",
    "metricdec",
    "metricmul",
    "metricdiv",
    "offload",
    "xslt",
    "ssi",
    "lua",
];

/// Parses `name:args` (the colon is required).
pub fn parse(text: &[u8]) -> Result<Action, ActionError> {
    let colon = text
        .iter()
        .position(|&b| b == b':')
        .ok_or(ActionError::NoColon)?;
    let name = &text[..colon];
    let arg = &text[colon + 1..];
    let owned = arg.to_vec();
    let set = |var| {
        Ok(Action::Set {
            var,
            value: arg.to_vec(),
        })
    };
    match name {
        b"continue" | b"last" => Ok(Action::Continue),
        b"break" => Ok(Action::Break {
            status: (arg.len() >= 3).then_some(owned),
        }),
        b"return" | b"break-with-status" => Ok(Action::Return { status: owned }),
        b"goto" => Ok(Action::Goto {
            number: usize::try_from(atoi(arg)).unwrap_or(0),
            label: owned,
        }),
        b"log" => Ok(Action::Log(owned)),
        b"donotlog" => Ok(Action::DoNotLog),
        b"donotoffload" => Ok(Action::DoNotOffload),
        b"logvar" => {
            let (key, value) = split_eq(arg).ok_or_else(|| {
                ActionError::Syntax("invalid logvar syntax, must be key=value".into())
            })?;
            Ok(Action::LogVar { key, value })
        }
        b"addvar" => {
            let (key, value) = split_eq(arg).ok_or_else(|| {
                ActionError::Syntax("[uwsgi-route] invalid addvar syntax, must be KEY=VAL".into())
            })?;
            Ok(Action::AddVar { key, value })
        }
        b"setmethod" => set(SetVar::Method),
        b"seturi" => set(SetVar::Uri),
        b"setpathinfo" => set(SetVar::PathInfo),
        b"setscriptname" => set(SetVar::ScriptName),
        b"setremoteaddr" => set(SetVar::RemoteAddr),
        b"setdocroot" => set(SetVar::DocRoot),
        b"setscheme" => set(SetVar::Scheme),
        b"setapp" => set(SetVar::App),
        b"sethome" => set(SetVar::Home),
        b"setfile" => set(SetVar::File),
        b"setuser" => set(SetVar::User),
        b"fixpathinfo" => Ok(Action::FixPathInfo),
        b"setmodifier1" => Ok(Action::SetModifier1(atoi(arg) as u8)),
        b"setmodifier2" => Ok(Action::SetModifier2(atoi(arg) as u8)),
        b"addheader" => Ok(Action::AddHeader(owned)),
        b"delheader" | b"remheader" => Ok(Action::DelHeader(owned)),
        b"clearheaders" | b"resetheaders" => Ok(Action::ClearHeaders(owned)),
        b"disableheaders" => Ok(Action::DisableHeaders),
        b"send" => Ok(Action::Send {
            text: owned,
            crlf: false,
        }),
        b"send-crnl" => Ok(Action::Send {
            text: owned,
            crlf: true,
        }),
        b"chdir" => Ok(Action::Chdir(owned)),
        b"uwsgi" | b"proxyuwsgi" => parse_uwsgi(arg),
        b"http" => parse_http(arg),
        b"redirect" | b"redirect-302" => Ok(Action::Redirect {
            url: owned,
            permanent: false,
        }),
        b"redirect-permanent" | b"redirect-301" => Ok(Action::Redirect {
            url: owned,
            permanent: true,
        }),
        b"rewrite" => Ok(Action::Rewrite {
            target: owned,
            last: false,
        }),
        b"rewrite-last" => Ok(Action::Rewrite {
            target: owned,
            last: true,
        }),
        b"static" => Ok(Action::Static {
            path: owned,
            next: false,
        }),
        b"static-next" => Ok(Action::Static {
            path: owned,
            next: true,
        }),
        b"basicauth" => parse_basicauth(arg, false),
        b"basicauth-next" => parse_basicauth(arg, true),
        b"setvar" => Err(ActionError::SetVar),
        _ => {
            let name = String::from_utf8_lossy(name).into_owned();
            if UNSUPPORTED.contains(&name.as_str()) {
                Err(ActionError::Unsupported(name))
            } else {
                Err(ActionError::Unknown(name))
            }
        }
    }
}

fn split_eq(arg: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let eq = arg.iter().position(|&b| b == b'=')?;
    Some((arg[..eq].to_vec(), arg[eq + 1..].to_vec()))
}

/// `ADDR,M1,M2[,APPID]`: exactly two commas are required; the modifiers
/// are read with `atoi`.
fn parse_uwsgi(arg: &[u8]) -> Result<Action, ActionError> {
    let mut parts = arg.splitn(4, |&b| b == b',');
    let (Some(addr), Some(m1), Some(m2)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ActionError::Syntax(format!(
            "invalid route syntax: {}",
            String::from_utf8_lossy(arg)
        )));
    };
    Ok(Action::Uwsgi {
        addr: addr.to_vec(),
        modifier1: atoi(m1) as u8,
        modifier2: atoi(m2) as u8,
        appid: parts.next().filter(|a| !a.is_empty()).map(<[u8]>::to_vec),
    })
}

fn parse_http(arg: &[u8]) -> Result<Action, ActionError> {
    let mut parts = arg.splitn(3, |&b| b == b',');
    let addr = parts.next().unwrap_or_default().to_vec();
    if addr.is_empty() {
        return Err(ActionError::Syntax(
            "invalid route syntax: http: needs an address".into(),
        ));
    }
    Ok(Action::Http {
        addr,
        host: parts.next().map(<[u8]>::to_vec),
        uri: parts.next().map(<[u8]>::to_vec),
    })
}

/// `REALM,USER:PASS` or `REALM,FILE` (no colon after the comma).
fn parse_basicauth(arg: &[u8], next: bool) -> Result<Action, ActionError> {
    let comma = arg.iter().position(|&b| b == b',').ok_or_else(|| {
        ActionError::Syntax(format!(
            "invalid route syntax: {}",
            String::from_utf8_lossy(arg)
        ))
    })?;
    let rest = &arg[comma + 1..];
    let credentials = if rest.contains(&b':') {
        Credentials::Pair(rest.to_vec())
    } else {
        Credentials::File(rest.to_vec())
    };
    Ok(Action::BasicAuth {
        realm: arg[..comma].to_vec(),
        credentials,
        next,
    })
}

/// C `atoi` (leading whitespace, sign, digits; saturating).
pub(crate) fn atoi(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
#[path = "action_tests.rs"]
mod tests;
