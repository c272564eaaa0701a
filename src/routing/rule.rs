//! One routing rule from one config entry (spec §5.2, `core/routing.c:
//! uwsgi_opt_add_route`): the option name picks the chain and the subject,
//! the value is split at its first space into pattern (or condition, or
//! status) and action. Errors carry the entry's origin (file:line).

use regex::bytes::Regex;

use super::action::{self, Action, ActionError};
use super::cond::{CondKind, Condition};
use super::pcre::{self, PatternError};
use crate::config::Origin;

/// The four independent tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// `route*`: before the app.
    Request,
    /// `error-route*`: when a status line is prepared.
    Error,
    /// `response-route*`: just before the response headers.
    Response,
    /// `final-route*`: after the response.
    Final,
}

impl ChainKind {
    /// The word uWSGI's table dump uses (`internal error routing table`).
    pub fn dump_name(self) -> &'static str {
        match self {
            ChainKind::Request => "",
            ChainKind::Error => "error ",
            ChainKind::Response => "response ",
            ChainKind::Final => "final ",
        }
    }
}

/// The request field a pattern rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    PathInfo,
    /// `HTTP_HOST` as sent (port included), else `SERVER_NAME`.
    Host,
    RequestUri,
    QueryString,
    RemoteAddr,
    UserAgent,
    Referer,
    RemoteUser,
}

impl Subject {
    /// The variables the subject reads, first present wins.
    pub fn vars(self) -> &'static [&'static [u8]] {
        match self {
            Subject::PathInfo => &[b"PATH_INFO"],
            Subject::Host => &[b"HTTP_HOST", b"SERVER_NAME"],
            Subject::RequestUri => &[b"REQUEST_URI"],
            Subject::QueryString => &[b"QUERY_STRING"],
            Subject::RemoteAddr => &[b"REMOTE_ADDR"],
            Subject::UserAgent => &[b"HTTP_USER_AGENT"],
            Subject::Referer => &[b"HTTP_REFERER"],
            Subject::RemoteUser => &[b"REMOTE_USER"],
        }
    }

    /// uWSGI's name in the table dump.
    pub fn name(self) -> &'static str {
        match self {
            Subject::PathInfo => "path_info",
            Subject::Host => "http_host",
            Subject::RequestUri => "request_uri",
            Subject::QueryString => "query_string",
            Subject::RemoteAddr => "remote_addr",
            Subject::UserAgent => "user_agent",
            Subject::Referer => "referer",
            Subject::RemoteUser => "remote_user",
        }
    }
}

/// When a rule's action runs.
#[derive(Debug, Clone)]
pub enum When {
    /// `route-run`.
    Always,
    Pattern {
        subject: Subject,
        regex: Regex,
    },
    If {
        cond: Condition,
        negate: bool,
    },
    /// `*-route-status = NNN`.
    Status(u16),
}

/// A rule: a label, or a condition with an action.
#[derive(Debug, Clone)]
pub enum RuleKind {
    Label(Vec<u8>),
    Act { when: When, action: Action },
}

/// One rule and where it was written.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    /// The option (`route-host`, ...).
    pub option: String,
    /// The value as written.
    pub value: Vec<u8>,
    pub origin: Origin,
}

/// Why a rule is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    /// No space between the pattern and the action, or no `:` in the action.
    #[error("invalid route syntax")]
    Syntax,
    #[error("invalid route condition syntax")]
    ConditionSyntax,
    #[error("unable to find \"{0}\" route condition")]
    UnknownCondition(String),
    #[error("{0}")]
    Action(ActionError),
    #[error("{0}")]
    Pattern(PatternError),
}

/// A refused rule: what is wrong, the entry, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: unable to register route \"{}\" ({option})", String::from_utf8_lossy(.value))]
pub struct RuleError {
    pub kind: RuleErrorKind,
    pub option: String,
    pub value: Vec<u8>,
    pub origin: Origin,
}

/// The chain and the subject word of a routing option, `None` for any
/// other option. The subject word is uWSGI's: `path_info`, `http_host`,
/// ..., `label`, `if`, `if-not`, `run`, `status`.
pub fn classify(option: &str) -> Option<(ChainKind, &str)> {
    let (chain, rest) = [
        ("final-", ChainKind::Final),
        ("error-", ChainKind::Error),
        ("response-", ChainKind::Response),
        ("", ChainKind::Request),
    ]
    .into_iter()
    .find_map(|(prefix, chain)| {
        Some((chain, option.strip_prefix(prefix)?.strip_prefix("route")?))
    })?;
    let word = match rest {
        "" => "path_info",
        "-host" => "http_host",
        "-uri" => "request_uri",
        "-qs" => "query_string",
        "-remote-addr" => "remote_addr",
        "-user-agent" => "user_agent",
        "-referer" => "referer",
        "-remote-user" => "remote_user",
        "-label" => "label",
        "-if" => "if",
        "-if-not" => "if-not",
        "-run" => "run",
        "-status" if chain != ChainKind::Request => "status",
        _ => return None,
    };
    Some((chain, word))
}

fn subject_of(word: &str) -> Subject {
    match word {
        "http_host" => Subject::Host,
        "request_uri" => Subject::RequestUri,
        "query_string" => Subject::QueryString,
        "remote_addr" => Subject::RemoteAddr,
        "user_agent" => Subject::UserAgent,
        "referer" => Subject::Referer,
        "remote_user" => Subject::RemoteUser,
        _ => Subject::PathInfo,
    }
}

/// Parses the value of a routing option whose subject word is `word`.
pub fn parse(option: &str, word: &str, value: &[u8], origin: &Origin) -> Result<Rule, RuleError> {
    let fail = |kind| RuleError {
        kind,
        option: option.to_string(),
        value: value.to_vec(),
        origin: origin.clone(),
    };
    let kind = match word {
        "label" => RuleKind::Label(value.to_vec()),
        "run" => RuleKind::Act {
            when: When::Always,
            action: parse_action(value).map_err(fail)?,
        },
        _ => {
            let space = value
                .iter()
                .position(|&b| b == b' ')
                .ok_or(fail(RuleErrorKind::Syntax))?;
            let (head, action_text) = (&value[..space], &value[space + 1..]);
            let when = match word {
                "if" | "if-not" => {
                    let colon = head
                        .iter()
                        .position(|&b| b == b':')
                        .ok_or(fail(RuleErrorKind::ConditionSyntax))?;
                    let name = &head[..colon];
                    let kind = CondKind::from_name(name).ok_or_else(|| {
                        fail(RuleErrorKind::UnknownCondition(
                            String::from_utf8_lossy(name).into_owned(),
                        ))
                    })?;
                    let cond = Condition::new(kind, &head[colon + 1..])
                        .map_err(|e| fail(RuleErrorKind::Pattern(e)))?;
                    When::If {
                        cond,
                        negate: word == "if-not",
                    }
                }
                "status" => When::Status(action::atoi(head).clamp(0, 999) as u16),
                _ => When::Pattern {
                    subject: subject_of(word),
                    regex: pcre::compile(head).map_err(|e| fail(RuleErrorKind::Pattern(e)))?,
                },
            };
            RuleKind::Act {
                when,
                action: parse_action(action_text).map_err(fail)?,
            }
        }
    };
    Ok(Rule {
        kind,
        option: option.to_string(),
        value: value.to_vec(),
        origin: origin.clone(),
    })
}

fn parse_action(text: &[u8]) -> Result<Action, RuleErrorKind> {
    action::parse(text).map_err(|e| match e {
        ActionError::NoColon => RuleErrorKind::Syntax,
        e => RuleErrorKind::Action(e),
    })
}

impl Rule {
    /// The pattern text of a pattern rule (the value before its space).
    pub fn pattern_text(&self) -> &[u8] {
        let space = self.value.iter().position(|&b| b == b' ');
        &self.value[..space.unwrap_or(self.value.len())]
    }

    /// The action text (after the first space; all of it for `run`).
    fn action_text(&self) -> &[u8] {
        match &self.kind {
            RuleKind::Act {
                when: When::Always, ..
            } => &self.value,
            _ => {
                let space = self.value.iter().position(|&b| b == b' ');
                space.map_or(&[][..], |s| &self.value[s + 1..])
            }
        }
    }

    /// uWSGI's line in the routing table dump for rule number `pos`.
    pub fn dump_line(&self, pos: usize) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let action = text(self.action_text());
        match &self.kind {
            RuleKind::Label(name) => format!("[rule: {pos}] label: {}", text(name)),
            RuleKind::Act {
                when: When::Always, ..
            } => format!("[rule: {pos}] action: {action}"),
            RuleKind::Act {
                when: When::Pattern { subject, .. },
                ..
            } => format!(
                "[rule: {pos}] subject: {} regexp: {} action: {action}",
                subject.name(),
                text(self.pattern_text())
            ),
            RuleKind::Act {
                when: When::If { cond, negate },
                ..
            } => {
                let head = self.pattern_text();
                let colon = head.iter().position(|&b| b == b':').unwrap_or(head.len());
                format!(
                    "[rule: {pos}] subject: {} func: {}{} action: {action}",
                    text(&cond.args),
                    if *negate { "!" } else { "" },
                    text(&head[..colon])
                )
            }
            RuleKind::Act {
                when: When::Status(_),
                ..
            } => {
                let head = text(self.pattern_text());
                format!("[rule: {pos}] subject: {head} func: {head} action: {action}")
            }
        }
    }
}
