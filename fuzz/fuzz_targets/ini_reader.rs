//! The ini reader and the magic-variable substitution that runs before it,
//! on arbitrary bytes. Invariants: no panic, every returned line lies in
//! the text that was parsed, and the line map is consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ruwsgi::config::ini;
use ruwsgi::config::placeholders::{magic_sub, MagicTable};

fuzz_target!(|data: &[u8]| {
    let parsed = ini::read(data, b"uwsgi");
    let line_count = data.split(|&b| b == b'\n').count();
    assert_eq!(parsed.found, !parsed.lines.is_empty());
    for line in &parsed.lines {
        assert!(line.line >= 1 && line.line <= line_count);
        assert_eq!(ini::trim(line.value), line.value);
    }

    let mut table = MagicTable::default();
    table.set(b'n', "app");
    table.set(b'd', "/srv/app/");
    for table in [MagicTable::default(), table] {
        let sub = magic_sub(data, &table);
        let out_lines = sub.text.split(|&b| b == b'\n').count();
        assert_eq!(sub.line_of.len(), out_lines);
        // Source lines only ever move forward.
        assert!(sub.line_of.windows(2).all(|w| w[0] < w[1]));
        for n in 1..=out_lines {
            assert!(sub.source_line(n) <= line_count);
        }
        // What the resolver does next: read the substituted text.
        let _ = ini::read(&sub.text, b"uwsgi");
    }
});
