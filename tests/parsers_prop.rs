//! Property tests over the parsers the fuzz targets cover (`fuzz/`), small enough to run in
//! seconds in the suite: the TSV readers, the preprocessing, the cache header reader and the
//! configuration loader never panic on any input, and well-formed inputs read back what was
//! written.

use std::path::Path;

use iisan::Config;
use iisan::cache::{CacheDtype, CacheHeader};
use iisan::data::split::{DataOptions, MissingTitle, preprocess};
use iisan::data::tsv::{parse_items, parse_users};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn tsv_and_preprocessing_never_panic(items in "(?s).{0,160}", users in "(?s).{0,160}") {
        let p = Path::new("f.tsv");
        if let (Ok(i), Ok(u)) = (parse_items(p, &items), parse_users(p, &users)) {
            for missing_title in [MissingTitle::Error, MissingTitle::Empty] {
                let opts = DataOptions { min_seq_len: 3, max_seq_len: 2, missing_title };
                let _ = preprocess("f", &i, &u, p, &opts);
            }
        }
    }

    #[test]
    fn written_items_read_back(rows in prop::collection::btree_map("[A-Za-z0-9_-]{1,8}", "[a-z ]{0,12}", 1..20)) {
        // ids unique (a map), titles without tabs or newlines: each line is `id<TAB>title`;
        // the reader trims the white space around a title
        let text: String = rows.iter().map(|(k, t)| format!("{k}\t{t}\n")).collect();
        let parsed = parse_items(Path::new("f.tsv"), &text).unwrap();
        let got: Vec<(String, String)> =
            parsed.items.iter().map(|r| (r.key.clone(), r.title.clone())).collect();
        let want: Vec<(String, String)> =
            rows.into_iter().map(|(k, t)| (k, t.trim().to_string())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn cache_headers_never_panic_and_read_back(
        noise in prop::collection::vec(any::<u8>(), 0..300),
        states in 1usize..30,
        width in 1usize..2048,
        items in 1usize..100_000,
    ) {
        let _ = CacheHeader::decode(Path::new("f.hsc"), &noise);
        let h = CacheHeader {
            model: "m".into(),
            modality: "text".into(),
            states,
            width,
            dtype: CacheDtype::F16,
            items,
            items_fingerprint: "fp".into(),
            preprocessing: "p".into(),
            tower: None,
        images_sha256: None,
        };
        let bytes = h.encode();
        let (back, offset) = CacheHeader::decode(Path::new("f.hsc"), &bytes).unwrap();
        prop_assert_eq!(back, h);
        prop_assert_eq!(offset, bytes.len());
        prop_assert_eq!(offset % 64, 0);
    }

    #[test]
    fn the_config_loader_never_panics(
        text in "(?s).{0,120}",
        sets in prop::collection::vec("[a-z_.]{1,20}=.{0,12}", 0..4),
    ) {
        if let Ok(cfg) = Config::from_text(&text, Some(Path::new("f.toml")), &sets) {
            let _ = cfg.check();
        }
    }
}
