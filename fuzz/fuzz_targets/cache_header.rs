//! The hidden-state cache header reader (what `iisan cache-info` and the loader check) on
//! arbitrary bytes.
#![no_main]

use std::path::Path;

use iisan::cache::CacheHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CacheHeader::decode(Path::new("f.hsc"), data);
});
