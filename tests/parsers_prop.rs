//! Property tests over the parsers the fuzz targets cover (`fuzz/`), small enough to run in
//! seconds in the suite: the TSV readers, the preprocessing, the cache header reader, the
//! configuration loader and the Amazon line parsers never panic on any input, and well-formed
//! inputs read back what was written; the import's threaded line reader hands back every line
//! in order.

use std::path::Path;

use iisan::Config;
use iisan::cache::{CacheDtype, CacheHeader};
use iisan::data::import::amazon_lines::Edition;
use iisan::data::import::lines::map_lines;
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
        shard: None,
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

    #[test]
    fn amazon_lines_never_panic(line in prop::collection::vec(any::<u8>(), 0..200)) {
        for e in [Edition::Amazon2023, Edition::Amazon2018] {
            let _ = e.review(&line);
            let _ = e.meta(&line);
        }
    }

    #[test]
    fn well_formed_review_lines_read_back(
        user in "[A-Za-z0-9_]{1,28}",
        item in "[A-Z0-9]{10}",
        t in 0u64..4_000_000_000_000,
        text in "(?s).{0,40}",
    ) {
        // the review's own text (any characters, escaped by the writer) is skipped
        let line = serde_json::json!(
            {"text": text, "user_id": user, "parent_asin": item, "timestamp": t, "images": []}
        ).to_string();
        let r = Edition::Amazon2023.review(line.as_bytes()).unwrap();
        prop_assert_eq!((&*r.user, &*r.item, r.time), (user.as_str(), item.as_str(), t as f64));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any lines (blank ones, CRLF, long ones crossing chunk boundaries), plain or gzipped:
    /// the non-blank ones come back once each, in order, with their numbers.
    #[test]
    fn the_line_pipeline_returns_every_line_in_order(
        lines in prop::collection::vec("[ a-z]{0,3}|[a-z]{1,2000}", 0..600),
        crlf in any::<bool>(),
        gz in any::<bool>(),
    ) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let end = if crlf { "\r\n" } else { "\n" };
        let text: String = lines.iter().map(|l| format!("{l}{end}")).collect();
        let bytes = if gz {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap()
        } else {
            text.into_bytes()
        };
        std::fs::write(&path, &bytes).unwrap();
        let mut got = Vec::new();
        let read = map_lines(&path, "x", &iisan::progress::Reporter::silent(), |_, l| l.to_vec(), |n, l| {
            got.push((n, String::from_utf8(l).unwrap()));
            Ok(())
        })
        .unwrap();
        let want: Vec<(u64, String)> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(k, l)| (k as u64 + 1, l.clone()))
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(read.lines, lines.len() as u64);
        prop_assert_eq!(read.source.bytes, bytes.len() as u64);
    }
}
