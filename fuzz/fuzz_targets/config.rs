//! The configuration loader: a TOML text, then `--set` overrides one per line after the first
//! NUL byte, loaded and checked.
#![no_main]

use std::path::Path;

use iisan::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, sets) = text.split_once('\0').unwrap_or((text, ""));
    let sets: Vec<String> = sets.lines().map(str::to_string).collect();
    if let Ok(cfg) = Config::from_text(toml, Some(Path::new("f.toml")), &sets) {
        let _ = cfg.check();
    }
});
