//! `man/uwsgi.1`, generated from the option table plus hand-written
//! sections. A test fails when the checked-in page is stale; regenerate it
//! with `RUWSGI_BLESS=1 cargo test --lib man_page`.

use super::options::{Arg, Category, OPTIONS};

const HEAD: &str = r#".TH UWSGI 1 "" "ruwsgi @VERSION@" "User Commands"
.SH NAME
uwsgi \- ruwsgi, a drop\-in replacement for the uWSGI 2.0 application server
.SH SYNOPSIS
.B uwsgi
[\fIoptions\fR...] [\fIfile.ini\fR...]
.br
.B uwsgi
\fB\-\-ini\fR \fIfile.ini\fR[:\fIsection\fR]
.br
.B uwsgi
\fB\-\-http\fR :8080 \fB\-\-module\fR \fIapp:application\fR
.SH DESCRIPTION
\fBruwsgi\fR reads the same command lines, environment variables and ini
files as uWSGI 2.0 and resolves them to the same ordered option list. It
runs the same roles: the emperor, the HTTP router, the master and its
preforked Python WSGI workers.
.SH CONFIGURATION
Options come, in this order, from \fBUWSGI_*\fR environment variables, the
command line (files named by \fB\-\-ini\fR and \fB\-\-include\fR are read
where they appear) and positional \fI*.ini\fR files. Every entry is kept in
order: for a single\-valued option the last one wins, list options append,
and \fB\-\-get\fR and \fB%(name)\fR see the first.
.PP
Ini files follow uWSGI's dialect: the default section is \fB[uwsgi]\fR
(\fIfile.ini:section\fR picks another), there are no inline comments, a line
without \fB=\fR is a key with an empty value, and unknown keys are kept as
placeholders unless \fB\-\-strict\fR is set.
.PP
Magic variables (\fB%d\fR, \fB%n\fR, \fB%p\fR, ...) are substituted in each
file's text as it is read; \fB$(VAR)\fR, \fB@(file)\fR and \fB%(name)\fR are
expanded once all files are read; \fBfor\fR, \fBif\-env\fR, \fBif\-exists\fR
and the other logic options filter and repeat lines while reading.
.SH OPTIONS
Options are listed by topic. An option shown with \fIVALUE\fR requires a
value; \fI[=VALUE]\fR takes one only when attached with \fB=\fR. Every
option can also be written as an ini key or set with \fB\-\-set\fR.
"#;

const TAIL: &str = r#".SH ENVIRONMENT
.TP
.B UWSGI_*
Each variable becomes an option: the prefix is dropped, the rest is
lower\-cased and underscores become dashes (\fBUWSGI_HTTP_SOCKET\fR is
\fB\-\-http\-socket\fR). These come before the command line, so anything
else overrides them.
.TP
.B UWSGI_RELOADS
Set by a running instance for its reloads; \fBif\-reload\fR tests it.
.TP
.B UWSGI_EMPEROR_FD
Set by an emperor for its vassals: the pipe to the emperor.
.TP
.B UWSGI_VASSAL_*
Passed by an emperor to every vassal as the matching \fBUWSGI_*\fR
variable.
.SH EXIT STATUS
.TP
.B 0
Normal exit, and after \fB\-\-get\fR, \fB\-\-help\fR, \fB\-\-version\fR or
\fB\-\-dump\-options\fR.
.TP
.B 1
A configuration error (unknown command\-line option, missing file, strict
mode violation, ...); the message names the file and line, argument or
variable it came from.
.TP
.I N
The value given to \fBexit\fR.
.SH EXAMPLES
Serve a WSGI module over HTTP:
.PP
.RS
uwsgi \-\-http :8080 \-\-module app:application \-\-master \-\-processes 2
.RE
.PP
Print the resolved configuration of an ini file and exit:
.PP
.RS
uwsgi \-\-ini app.ini \-\-show\-config \-\-privileged\-binary\-patch true
.RE
.PP
Print one value:
.PP
.RS
uwsgi \-\-get socket \-\-ini app.ini
.RE
.PP
Host many sites, one vassal per file:
.PP
.RS
uwsgi \-\-master \-\-http :8080 \-\-emperor 'vassals.d/*.ini'
.RE
.SH SEE ALSO
The uWSGI 2.0 documentation; ruwsgi's README lists where it differs.
"#;

fn roff(text: &str) -> String {
    text.replace('\\', "\\\\").replace('-', "\\-")
}

fn title(c: Category) -> &'static str {
    match c {
        Category::Config => "Configuration system",
        Category::Sockets => "Sockets",
        Category::Processes => "Processes and signals",
        Category::Logging => "Logging",
        Category::Python => "Python",
        Category::Http => "HTTP router",
        Category::Routing => "Internal routing",
        Category::Emperor => "Emperor",
        Category::Other => "Other",
    }
}

/// The whole page.
pub fn render() -> String {
    let mut out = HEAD.replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    let mut cats: Vec<Category> = OPTIONS.iter().map(|o| o.category).collect();
    cats.sort();
    cats.dedup();
    for cat in cats {
        out.push_str(&format!(".SS {}\n", title(cat)));
        for o in OPTIONS.iter().filter(|o| o.category == cat) {
            out.push_str(".TP\n");
            if let Some(c) = o.short {
                out.push_str(&format!("\\fB\\-{}\\fR, ", c as char));
            }
            out.push_str(&format!("\\fB\\-\\-{}\\fR", roff(o.name)));
            match o.arg {
                Arg::None => {}
                Arg::Required => out.push_str(" \\fIVALUE\\fR"),
                Arg::Optional => out.push_str("[=\\fIVALUE\\fR]"),
            }
            out.push('\n');
            out.push_str(&roff(o.help));
            out.push('\n');
        }
    }
    out.push_str(TAIL);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn man_page() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/uwsgi.1");
        let page = super::render();
        if std::env::var_os("RUWSGI_BLESS").is_some() {
            std::fs::write(path, &page).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == page,
            "man/uwsgi.1 is stale: regenerate it with `RUWSGI_BLESS=1 cargo test --lib man_page`"
        );
    }
}
