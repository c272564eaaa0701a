//! Internal routing (uWSGI's `core/routing.c`), shared by the HTTP router
//! and the workers: the `route*`, `error-route*`, `response-route*` and
//! `final-route*` rules of a config, parsed once into a [`Table`] of four
//! [`Chain`]s, and evaluated per request by [`evaluate`], a pure function
//! from a chain and a request view to an [`Evaluation`] (what to do, and
//! the variables, headers and log lines the actions produced).
//!
//! Parts: [`rule`] (one entry → one rule, errors with file:line),
//! [`action`] (the action table), [`cond`] (`route-if` conditions),
//! [`pcre`] (uWSGI's PCRE patterns on the linear-time `regex` crate),
//! [`subst`] (`$1`, `${VAR}`, `${fn[arg]}`), [`vars`] (the request view and
//! the routing variable functions), [`response`] (generated responses and
//! header edits), [`auth`] (`basicauth`), [`eval`] (chain semantics:
//! NEXT/CONTINUE/BREAK, `goto`, labels). [`mime`] is the `Content-Type`
//! table of served files, for the router and the workers alike.
//!
//! Many pattern rules on the same subject are matched at once through a
//! `RegexSet` per subject; the rules still run in configuration order.
//!
//! Not owned here: sockets, forwarding, serving files, writing responses:
//! the caller acts on the [`Outcome`].

pub mod action;
pub mod auth;
pub mod cond;
pub mod eval;
pub mod mime;
pub mod pcre;
pub mod response;
pub mod rule;
pub mod subst;
pub mod vars;

use regex::bytes::{RegexSet, RegexSetBuilder};

pub use eval::{evaluate, Evaluation, Forward, ForwardKind, Outcome};
pub use response::{HeaderOp, Response};
pub use rule::{ChainKind, Rule, RuleError, RuleKind, Subject, When};
pub use vars::{Context, Var, VarLookup};

use crate::config::Origin;

/// Compiled-size ceiling of one subject's `RegexSet`; past it the rules of
/// that subject are matched one by one.
const SET_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// The pattern rules of one subject, matched together.
#[derive(Debug, Clone)]
pub(crate) struct SubjectSet {
    /// Names this set (and its clones) in the per-thread memo of
    /// [`SubjectSet::matches`].
    id: usize,
    pub(crate) subject: Subject,
    /// `None` when the set could not be built (then: one by one).
    pub(crate) set: Option<RegexSet>,
    /// For each rule index of the chain, its slot in `set`.
    pub(crate) slots: Vec<(usize, usize)>,
    /// For each slot, its rule index.
    pub(crate) slots_by_slot: Vec<usize>,
}

/// Sets of at least this many patterns remember their answers per subject
/// text (a thousand `route-host` rules cost a few microseconds a match; a
/// site sees few distinct hosts).
const MEMO_MIN_PATTERNS: usize = 16;

/// Subject texts remembered per set before the memo starts over (a
/// client sending random hosts costs an insert, never unbounded memory).
const MEMO_ENTRIES: usize = 256;

/// Longer subject texts are matched every time, not remembered (a memo of
/// 256 long hostile texts would hold megabytes).
const MEMO_MAX_TEXT: usize = 256;

impl SubjectSet {
    /// Which of the set's patterns match `text` (`None`: no set was built).
    pub(crate) fn matches(&self, text: &[u8]) -> Option<regex::bytes::SetMatches> {
        use std::cell::RefCell;
        use std::collections::HashMap;
        type Memo = HashMap<usize, HashMap<Vec<u8>, regex::bytes::SetMatches>>;
        thread_local! {
            static MEMO: RefCell<Memo> = RefCell::new(HashMap::new());
        }
        let set = self.set.as_ref()?;
        if set.len() < MEMO_MIN_PATTERNS || text.len() > MEMO_MAX_TEXT {
            return Some(set.matches(text));
        }
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            let texts = memo.entry(self.id).or_default();
            if let Some(found) = texts.get(text) {
                return Some(found.clone());
            }
            let found = set.matches(text);
            if texts.len() >= MEMO_ENTRIES {
                texts.clear();
            }
            texts.insert(text.to_vec(), found.clone());
            Some(found)
        })
    }
}

/// One chain of rules, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub rules: Vec<Rule>,
    pub(crate) sets: Vec<SubjectSet>,
    /// For each rule index: the first rule at or after it that no built
    /// set covers (the rules between can be skipped on the sets' word).
    pub(crate) next_unset: Vec<usize>,
}

impl Chain {
    fn build_sets(&mut self) {
        let mut subjects: Vec<Subject> = Vec::new();
        for rule in &self.rules {
            if let RuleKind::Act {
                when: When::Pattern { subject, .. },
                ..
            } = &rule.kind
            {
                if !subjects.contains(subject) {
                    subjects.push(*subject);
                }
            }
        }
        self.sets = subjects
            .into_iter()
            .map(|subject| {
                let mut patterns = Vec::new();
                let mut slots = Vec::new();
                for (i, rule) in self.rules.iter().enumerate() {
                    if let RuleKind::Act {
                        when: When::Pattern { subject: s, regex },
                        ..
                    } = &rule.kind
                    {
                        if *s == subject {
                            slots.push((i, patterns.len()));
                            patterns.push(regex.as_str().to_string());
                        }
                    }
                }
                let set = RegexSetBuilder::new(&patterns)
                    .size_limit(SET_SIZE_LIMIT)
                    .build()
                    .ok();
                let slots_by_slot = slots.iter().map(|&(rule, _)| rule).collect();
                static NEXT_ID: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                SubjectSet {
                    id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    subject,
                    set,
                    slots,
                    slots_by_slot,
                }
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn build_skips(&mut self) {
        let mut covered = vec![false; self.rules.len()];
        for set in self.sets.iter().filter(|s| s.set.is_some()) {
            for &(rule, _) in &set.slots {
                covered[rule] = true;
            }
        }
        let mut next = self.rules.len();
        self.next_unset = vec![0; self.rules.len()];
        for i in (0..self.rules.len()).rev() {
            if !covered[i] {
                next = i;
            }
            self.next_unset[i] = next;
        }
    }
}

/// The four chains of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub request: Chain,
    pub error: Chain,
    pub response: Chain,
    pub final_: Chain,
}

impl Table {
    /// Builds the table from config entries `(option, value, origin)` in
    /// order; entries of other options are ignored. The first bad rule
    /// stops it.
    pub fn from_entries<'a, I>(entries: I) -> Result<Table, RuleError>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8], &'a Origin)>,
    {
        let mut table = Table::default();
        for (option, value, origin) in entries {
            let Ok(option) = std::str::from_utf8(option) else {
                continue;
            };
            let Some((chain, word)) = rule::classify(option) else {
                continue;
            };
            let rule = rule::parse(option, word, value, origin)?;
            table.chain_mut(chain).rules.push(rule);
        }
        for chain in [
            &mut table.request,
            &mut table.error,
            &mut table.response,
            &mut table.final_,
        ] {
            chain.build_sets();
            chain.build_skips();
        }
        Ok(table)
    }

    pub fn chain(&self, kind: ChainKind) -> &Chain {
        match kind {
            ChainKind::Request => &self.request,
            ChainKind::Error => &self.error,
            ChainKind::Response => &self.response,
            ChainKind::Final => &self.final_,
        }
    }

    fn chain_mut(&mut self, kind: ChainKind) -> &mut Chain {
        match kind {
            ChainKind::Request => &mut self.request,
            ChainKind::Error => &mut self.error,
            ChainKind::Response => &mut self.response,
            ChainKind::Final => &mut self.final_,
        }
    }

    /// No rule in any chain.
    pub fn is_empty(&self) -> bool {
        [
            ChainKind::Request,
            ChainKind::Error,
            ChainKind::Response,
            ChainKind::Final,
        ]
        .iter()
        .all(|&k| self.chain(k).is_empty())
    }

    /// uWSGI's start-up dump of the non-empty chains
    /// (`*** dumping internal routing table ***` ...).
    pub fn dump(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in [
            ChainKind::Request,
            ChainKind::Error,
            ChainKind::Response,
            ChainKind::Final,
        ] {
            let chain = self.chain(kind);
            if chain.is_empty() {
                continue;
            }
            let name = kind.dump_name();
            lines.push(format!("*** dumping internal {name}routing table ***"));
            lines.extend(chain.rules.iter().enumerate().map(|(i, r)| r.dump_line(i)));
            lines.push(format!("*** end of the internal {name}routing table ***"));
        }
        lines
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod eval_tests;
