//! The Amazon 2023 / 2018 review and metadata line parsers (`data import amazon2023|2018`) on
//! arbitrary bytes: every outcome must be a parsed line or an error message, never a panic.
#![no_main]

use iisan::data::import::amazon_lines::Edition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for e in [Edition::Amazon2023, Edition::Amazon2018] {
        let _ = e.review(data);
        let _ = e.meta(data);
    }
});
