//! The deferred expansion scanner (`$(..)`, `@(..)`, `%(..)`) and
//! placeholder math, on arbitrary values with deterministic fake lookups
//! (nothing here touches the environment or the file system).
//! Invariants: no panic, and an expansion either succeeds or stops with an
//! error (the scanner's runaway limit) instead of looping.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ruwsgi::config::placeholders::{expand, placeholder_math, MAX_EXPANDED_LEN};

/// A fake lookup: keys starting with `x` are unknown, `self` returns the
/// value being expanded (uWSGI's self reference), `err` fails, anything
/// else maps to the key reversed.
fn fake(key: &[u8], current: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match key {
        [b'x', ..] => Ok(None),
        b"self" => Ok(Some(current.to_vec())),
        b"err" => Err("fake lookup error".into()),
        _ => Ok(Some(key.iter().rev().copied().collect())),
    }
}

/// A lookup for placeholder math: numbers for short keys, text otherwise.
fn math_lookup(key: &[u8]) -> Option<Vec<u8>> {
    match key.len() {
        0 => None,
        1 => Some(vec![b'0' + key[0] % 10]),
        2 => Some(format!("-{}", key[0]).into_bytes()),
        _ => Some(key.to_vec()),
    }
}

fuzz_target!(|data: &[u8]| {
    // Values in real configs are short; long inputs only slow the search.
    if data.len() > 4096 {
        return;
    }
    for symbol in [b'$', b'@', b'%'] {
        let mut value = data.to_vec();
        match expand(&mut value, symbol, fake) {
            Ok(changed) => {
                assert!(value.len() <= MAX_EXPANDED_LEN);
                assert!(changed || value == data);
            }
            Err(_) => assert!(value.len() <= MAX_EXPANDED_LEN),
        }
    }
    // `%(a b + 1)` math, as the `%` pass calls it for keys with spaces.
    let _ = placeholder_math(data, math_lookup);
    // And the `%` pass with math: keys with spaces go through the math.
    let mut value = data.to_vec();
    let _ = expand(&mut value, b'%', |key, current| {
        if key.contains(&b' ') {
            Ok(placeholder_math(key, math_lookup))
        } else {
            fake(key, current)
        }
    });
});
