//! The TSV readers and the preprocessing on arbitrary text: items and users files split at the
//! first NUL byte; every outcome must be Ok or an error, never a panic, and every item id
//! accepted obeys the id rules (`data::ids`: no path, control character or white space).
#![no_main]

use std::path::Path;

use iisan::data::ids::item_id_problem;
use iisan::data::split::{DataOptions, MissingTitle, preprocess};
use iisan::data::tsv::{parse_items, parse_users};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (items, users) = text.split_once('\0').unwrap_or((text, text));
    let (Ok(items), Ok(users)) = (
        parse_items(Path::new("items.tsv"), items),
        parse_users(Path::new("users.tsv"), users),
    ) else {
        return;
    };
    for it in &items.items {
        assert_eq!(item_id_problem(&it.key), None, "{:?}", it.key);
    }
    for missing_title in [MissingTitle::Error, MissingTitle::Empty] {
        let opts = DataOptions {
            min_seq_len: 3,
            max_seq_len: 4,
            missing_title,
        };
        let _ = preprocess("f", &items, &users, Path::new("users.tsv"), &opts);
    }
});
