//! The one extension → `Content-Type` table, shared by every file ruwsgi
//! serves: the workers' `static-map` / `static-map2` / `check-static`
//! files and the `static:` routing action (in the HTTP router and in
//! workers).
//!
//! As in uWSGI (`core/utils.c`, `uwsgi_build_mime_dict`): the `mimefile`
//! (`mime-file`) files are read in order, `/etc/mime.types` when none is
//! set; a line is a type then its extensions, lines not starting with a
//! letter or digit are skipped, and the first file entry for an extension
//! wins. A configured file that cannot be read is logged with uWSGI's
//! words and skipped. Unlike uWSGI, a built-in table of common web types
//! fills in the extensions no file names (containers often have no
//! `/etc/mime.types`), extensions match whatever their case, and a one
//! letter extension at the end of a line is kept.
//!
//! The extension of a path is what follows the last `.` of its last
//! component (`a.tar.gz` → `gz`, `.htaccess` → `htaccess`).
//!
//! The table is built once per process, on first use; a worker or the
//! router records its `mimefile` entries at start ([`init`]) so that every
//! lookup, `${mime[VAR]}` included, sees the configured files.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The file read when no `mimefile` is configured.
pub const DEFAULT_FILE: &str = "/etc/mime.types";

/// Types for common web extensions, used for any extension the files do
/// not name. Values agree with Debian's `/etc/mime.types`.
const BUILT_IN: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("json", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("ico", "image/vnd.microsoft.icon"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("pdf", "application/pdf"),
    ("wasm", "application/wasm"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
];

/// Extension (lower case) → type.
#[derive(Debug, Default)]
pub struct MimeTypes {
    types: HashMap<Box<[u8]>, Box<str>>,
}

impl MimeTypes {
    /// The table for `files` (`/etc/mime.types` when empty) plus the
    /// built-in types. An unreadable configured file is logged.
    pub fn load(files: &[String]) -> MimeTypes {
        let mut table = MimeTypes::default();
        if files.is_empty() {
            // Absent in many containers: the built-in types cover it.
            if let Ok(text) = std::fs::read(DEFAULT_FILE) {
                table.add_file(&text);
            }
        }
        for file in files {
            match std::fs::read(file) {
                Ok(text) => table.add_file(&text),
                Err(_) => eprintln!("!!! no {file} file found !!!"),
            }
        }
        table.add_built_in();
        table
    }

    /// Adds the entries of a `mime.types` text; extensions already known
    /// keep their type.
    pub fn add_file(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            if !line.first().is_some_and(u8::is_ascii_alphanumeric) {
                continue;
            }
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let mut words = line.split_ascii_whitespace();
            let Some(ty) = words.next() else { continue };
            for ext in words {
                self.insert(ext, ty);
            }
        }
    }

    /// Adds the built-in types for extensions not yet known.
    pub fn add_built_in(&mut self) {
        for (ext, ty) in BUILT_IN {
            self.insert(ext, ty);
        }
    }

    fn insert(&mut self, ext: &str, ty: &str) {
        let key = ext.as_bytes().to_ascii_lowercase().into_boxed_slice();
        self.types.entry(key).or_insert_with(|| ty.into());
    }

    /// The type for `path`'s extension, if the table knows it.
    pub fn get(&self, path: &[u8]) -> Option<&str> {
        let ext = extension(path)?;
        if ext.iter().any(u8::is_ascii_uppercase) {
            self.types.get(ext.to_ascii_lowercase().as_slice())
        } else {
            self.types.get(ext)
        }
        .map(|t| &**t)
    }
}

/// What follows the last `.` of `path`'s last component; `None` without
/// one or when nothing follows it.
fn extension(path: &[u8]) -> Option<&[u8]> {
    let name = path.rsplit(|&b| b == b'/').next()?;
    let dot = name.iter().rposition(|&b| b == b'.')?;
    Some(&name[dot + 1..]).filter(|e| !e.is_empty())
}

/// This process's table.
static TABLE: OnceLock<MimeTypes> = OnceLock::new();

/// The role's `mimefile` entries, recorded by [`init`].
static FILES: OnceLock<Vec<String>> = OnceLock::new();

/// Records this process's `mimefile` entries (a role calls it at start).
/// Nothing is read yet: the table is built on the first lookup, if any.
pub fn init(files: &[String]) {
    let _ = FILES.set(files.to_vec());
}

/// The `Content-Type` for a file at `path`, from this process's table
/// (built on the first call from the files given to [`init`], else from
/// `files`).
pub fn content_type(files: &[String], path: &[u8]) -> Option<&'static str> {
    TABLE
        .get_or_init(|| MimeTypes::load(FILES.get().map_or(files, Vec::as_slice)))
        .get(path)
}

/// [`content_type`] with the role's files: what `${mime[VAR]}` reads.
pub fn lookup(path: &[u8]) -> Option<&'static str> {
    content_type(&[], path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"# comment line naming text/x-comment txt\n\
        application/x-test\t\ttst TSTU\n\
        image/x-from-file\tico\n\
        text/x-later\ttst\n\
        text/x-c\tc\n\
        \x20indented/type\tind\n\
        application/no-extensions\n";

    fn table(file: &[u8]) -> MimeTypes {
        let mut t = MimeTypes::default();
        t.add_file(file);
        t.add_built_in();
        t
    }

    /// (name, path, type).
    type Cases<'a> = &'a [(&'a str, &'a [u8], Option<&'a str>)];

    fn check(t: &MimeTypes, cases: Cases<'_>) {
        for (name, path, want) in cases {
            assert_eq!(t.get(path), *want, "{name}");
        }
    }

    #[test]
    fn built_in_types() {
        check(
            &table(b""),
            &[
                ("ico", b"/srv/favicon.ico", Some("image/vnd.microsoft.icon")),
                ("js", b"app.js", Some("text/javascript")),
                ("upper case", b"/srv/INDEX.HTML", Some("text/html")),
                ("mixed case", b"/srv/photo.JpG", Some("image/jpeg")),
                ("unknown extension", b"/srv/data.qqq", None),
                ("last extension", b"/srv/a.tar.gz", Some("application/gzip")),
                ("no extension", b"/srv/README", None),
                ("dot in a directory", b"/srv/v1.html/README", None),
                ("trailing dot", b"/srv/a.", None),
                ("dotfile", b"/srv/.html", Some("text/html")),
                ("empty path", b"", None),
            ],
        );
    }

    #[test]
    fn file_types() {
        check(
            &table(FILE),
            &[
                ("from the file", b"/srv/a.tst", Some("application/x-test")),
                ("first entry wins", b"/s/B.TST", Some("application/x-test")),
                ("upper case in file", b"x.tstu", Some("application/x-test")),
                ("over built-in", b"/s/a.ico", Some("image/x-from-file")),
                ("one-letter extension", b"/srv/main.c", Some("text/x-c")),
                ("built-in fills gaps", b"/srv/a.css", Some("text/css")),
                ("comment skipped", b"/srv/a.txt", Some("text/plain")),
                ("indented line skipped", b"/srv/a.ind", None),
                ("unknown extension", b"/srv/data.qqq", None),
            ],
        );
    }

    #[test]
    fn configured_files_in_order_and_missing_ones_skipped() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-mime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("first.types");
        let second = dir.join("second.types");
        std::fs::write(&first, "text/x-first\tone\n").unwrap();
        std::fs::write(&second, "text/x-second\tone two\n").unwrap();
        let files = [
            dir.join("missing.types").display().to_string(),
            first.display().to_string(),
            second.display().to_string(),
        ];
        let t = MimeTypes::load(&files);
        assert_eq!(t.get(b"a.one"), Some("text/x-first"));
        assert_eq!(t.get(b"a.two"), Some("text/x-second"));
        assert_eq!(t.get(b"a.png"), Some("image/png"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
