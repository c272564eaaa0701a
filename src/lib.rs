//! ruwsgi: a drop-in replacement for the `uwsgi` binary (uWSGI 2.0.x).
//!
//! Data flow: argv + environ → [`cli`] (getopt-compatible scanning) →
//! [`config`] (ini files, magic variables, logic, expansion passes, the
//! configure phase) → a resolved [`config::Config`] → [`run`] picks what
//! to do. [`sys`] holds the operating-system calls (and all `unsafe`).

pub mod cli;
pub mod config;
pub mod emperor;
#[cfg(feature = "python")]
pub mod master;
pub mod protocol;
#[cfg(feature = "python")]
pub mod python;
pub mod router;
pub mod routing;
pub mod run;
pub mod sys;
#[cfg(feature = "python")]
pub mod worker;
