//! /etc/network/interfaces text: parsing, the bond-* mapping and lint end in a value or a
//! `FILE:LINE:` error, never a panic.
#![no_main]

use std::path::Path;

use rbond::config::{bond, interfaces::Interfaces, lint};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `source` reads other files from disk: that is file I/O, left to the tests.
    if text.lines().any(|l| l.trim_start().starts_with("source")) {
        return;
    }
    match Interfaces::parse(text, Path::new("fuzz")) {
        Ok(ifs) => {
            lint::lint(&ifs);
            for b in bond::bonds(&ifs) {
                if let Err(e) = bond::bond_config(&ifs, &b) {
                    assert!(e.to_string().starts_with("fuzz:"), "{e}");
                }
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz:"), "{e}"),
    }
});
