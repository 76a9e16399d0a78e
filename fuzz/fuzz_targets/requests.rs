//! Any bytes as a `POST /v1/recommend` or `POST /v1/items` body: decoded or refused with a
//! 400, never a panic; a decoded body respects the batch bound.
#![no_main]

use iisan::deploy::server::requests::{decode_items, decode_recommend};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = decode_recommend(data, 8) {
        assert!(!q.histories.is_empty() && q.histories.len() <= 8);
        assert!(!q.single || q.histories.len() == 1);
    }
    if let Ok(items) = decode_items(data, 8) {
        assert!(!items.is_empty() && items.len() <= 8);
    }
});
