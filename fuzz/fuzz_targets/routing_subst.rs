//! The routing substitution engine (`$N`, `${VAR}`, `${fn[arg]}`), the
//! PCRE-to-regex translation and rule parsing on arbitrary bytes.
//!
//! Input layout: `template \0 subject \0 pattern`, any part may be
//! missing. Invariants: no panic; a template without `$` comes back
//! unchanged; the output grows by at most one value per `$` (a capture or
//! a variable, all bounded here); a pattern either compiles or is refused
//! with a reason; a rule built from the pieces parses or fails with an
//! error, and evaluating a parsed table never panics.

#![no_main]

use std::ops::Range;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use ruwsgi::config::Origin;
use ruwsgi::routing::subst::{self, Captures, Source};
use ruwsgi::routing::{evaluate, pcre, Context, Table, Var};

/// Longest value any lookup returns.
const MAX_VALUE: usize = 64;

struct Fake<'a> {
    subject: &'a [u8],
}

impl Source for Fake<'_> {
    fn var(&self, name: &[u8]) -> Option<&[u8]> {
        match name {
            b"PATH_INFO" => Some(&self.subject[..self.subject.len().min(MAX_VALUE)]),
            b"EMPTY" => Some(b""),
            _ => None,
        }
    }

    fn function(&self, func: &[u8], arg: &[u8]) -> Option<Option<Vec<u8>>> {
        match func {
            b"len" => Some(Some(arg.len().to_string().into_bytes())),
            b"none" => Some(None),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let template = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let pattern = parts.next().unwrap_or_default();
    let subject = &subject[..subject.len().min(MAX_VALUE)];

    // Captures: the subject cut in up to three groups.
    let third = subject.len() / 3;
    let groups: Vec<Option<Range<usize>>> = vec![
        Some(0..subject.len()),
        Some(0..third),
        None,
        Some(third..subject.len()),
    ];
    let caps = Captures {
        subject,
        groups: &groups,
    };
    let src = Fake { subject };

    let dollars = template.iter().filter(|&&b| b == b'$').count();
    for captures in [None, Some(&caps), Some(&Captures::NONE)] {
        let out = subst::translate(template, captures, &src);
        if dollars == 0 {
            assert_eq!(out, template);
        }
        // `${` kept verbatim when unterminated adds nothing; every `$`
        // adds at most one bounded value (`len` of an argument is short).
        assert!(out.len() <= template.len() + dollars * (MAX_VALUE + 20) + 2);
    }

    // Patterns: compile or a reason, never a panic.
    let compiled = pcre::compile(pattern);
    if let Ok(re) = &compiled {
        let _ = re.captures(subject);
    }

    // A rule from the pieces, then a table evaluation.
    let origin = Origin::File {
        file: Arc::from("fuzz.ini"),
        line: 1,
    };
    let rule = [pattern, b" ", template].concat();
    let entries: Vec<(&[u8], &[u8], &Origin)> = vec![
        (b"route", &rule, &origin),
        (b"route-if", &rule, &origin),
        (b"route-run", template, &origin),
        (b"error-route-status", &rule, &origin),
    ];
    for entry in entries {
        if let Ok(table) = Table::from_entries([entry]) {
            let vars: Vec<Var> = vec![
                (b"PATH_INFO".to_vec(), subject.to_vec()),
                (b"QUERY_STRING".to_vec(), subject.to_vec()),
                (b"HTTP_HOST".to_vec(), subject.to_vec()),
                (b"HTTP_COOKIE".to_vec(), subject.to_vec()),
            ];
            let ctx = Context {
                status: 404,
                ..Context::default()
            };
            let _ = evaluate(&table.request, &vars, &ctx);
            let _ = evaluate(&table.error, &vars, &ctx);
            let _ = table.dump();
        }
    }
});
