//! The catalogue as a whole: a base written as training writes it, items appended, the ANN
//! index built over it, compaction; every ranking compared with the brute-force definition
//! (score = dot product, best first, ties to the lower row).

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::progress::Reporter;

const D: usize = 8;

/// A base of `n` items `i1..=in` with rows drawn uniformly from [-1, 1).
fn write(dir: &Path, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v: Vec<f32> = vec![0.0; D];
    v.extend((0..n * D).map(|_| rng.random_range(-1.0..1.0)));
    let keys: Vec<String> = std::iter::once("<pad>".into())
        .chain((1..=n).map(|i| format!("i{i}")))
        .collect();
    let t = Tensor::from_vec(v.clone(), (n + 1, D), &Device::Cpu).unwrap();
    write_base(dir, &keys, &t).unwrap();
    v
}

/// The best `k` rows of `all` (`[N + 1, D]`, row 0 padding) for `q`, by the definition.
fn brute(all: &[f32], q: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
    let mut s: Vec<(f32, u32)> = (1..all.len() / D)
        .filter(|&r| !exclude.contains(&(r as u32)))
        .map(|r| {
            let row = &all[r * D..(r + 1) * D];
            (row.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), r as u32)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|x| x.1).collect()
}

/// Row `r`'s score for `q`.
fn exact_score(all: &[f32], q: &[f32], r: u32) -> f32 {
    let row = &all[r as usize * D..(r as usize + 1) * D];
    row.iter().zip(q).map(|(a, b)| a * b).sum()
}

fn items(v: &[Scored]) -> Vec<u32> {
    v.iter().map(|s| s.item).collect()
}

#[test]
fn exact_scan_ranks_base_and_segment_as_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = write(dir.path(), 40_000, 1);
    let cat = Catalogue::open(dir.path(), SearchMode::Auto).unwrap();
    assert!(cat.ann().is_none());
    // two appends: the second item of the first batch must outrank everything for q
    let mut new = vec![0.5f32; D];
    new.extend([9.0; D]);
    let cat = cat
        .append(dir.path(), &["n1".into(), "n2".into()], &new)
        .unwrap();
    let cat = cat.append(dir.path(), &["n3".into()], &[0.1; D]).unwrap();
    all.extend(&new);
    all.extend([0.1; D]);
    assert_eq!((cat.num_items(), cat.base_items()), (40_003, 40_000));
    assert_eq!((cat.key(40_002), cat.row_of("n3")), ("n2", Some(40_003)));
    // reopened from disk: the same catalogue
    let back = Catalogue::open(dir.path(), SearchMode::Exact).unwrap();
    assert_eq!(back.num_items(), 40_003);
    assert_eq!(back.row(40_002), &[9.0; D]);
    // 300 states: more than one group of states and several row blocks
    let mut rng = StdRng::seed_from_u64(2);
    let states: Vec<f32> = (0..300 * D).map(|_| rng.random_range(-1.0..1.0)).collect();
    let ex = [40_002u32, 5];
    let wants: Vec<Want> = (0..300)
        .map(|i| Want {
            k: if i % 2 == 0 { 10 } else { 70 },
            exclude: if i % 3 == 0 { &ex } else { &[] },
        })
        .collect();
    let got = back.search(&states, &wants).unwrap();
    for (i, w) in wants.iter().enumerate() {
        let q = &states[i * D..(i + 1) * D];
        assert_eq!(items(&got[i]), brute(&all, q, w.k, w.exclude), "state {i}");
    }
    // known and repeated ids are refused, nothing written
    let e = back.append(
        dir.path(),
        &["n1".into(), "x".into(), "x".into()],
        &[0.0; 3 * D],
    );
    assert!(e.err().unwrap().to_string().contains("n1, x"));
    assert_eq!(
        Catalogue::open(dir.path(), SearchMode::Exact)
            .unwrap()
            .num_items(),
        40_003
    );
}

#[test]
fn ann_candidates_are_rescored_exactly_and_later_rows_scanned_then_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = write(dir.path(), 3_000, 3);
    // 3,000 rows: 256 lists (4 sqrt(3000) = 219 -> 2^8) of about 12; a quarter of them
    // scanned per query
    let params = AnnParams {
        probes: 64,
        candidates: 50,
        ..AnnParams::default()
    };
    let r = ann::build(dir.path(), &params, &Reporter::silent()).unwrap();
    assert_eq!((r.items, r.lists), (3_000, 256));
    let cat = Catalogue::open(dir.path(), SearchMode::Auto).unwrap();
    assert_eq!(cat.ann().map(AnnIndex::items), Some(3_000));
    // an item added after the build: not in the graph, found by the scan of later rows
    let cat = cat.append(dir.path(), &["late".into()], &[5.0; D]).unwrap();
    all.extend([5.0; D]);
    let q = [1.0f32; D];
    let got = cat.search(&q, &[Want { k: 5, exclude: &[] }]).unwrap();
    assert_eq!(items(&got[0]), brute(&all, &q, 5, &[]));
    assert_eq!(got[0][0].item, 3_001);
    let exact = Catalogue::open(dir.path(), SearchMode::Exact).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let mut hits = 0;
    for _ in 0..50 {
        let q: Vec<f32> = (0..D).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w = [Want {
            k: 10,
            exclude: &[],
        }];
        let (a, e) = (
            &cat.search(&q, &w).unwrap()[0],
            &exact.search(&q, &w).unwrap()[0],
        );
        // every score returned is the item's exact score
        for x in a {
            let want = exact_score(&all, &q, x.item);
            assert!((x.score - want).abs() <= 1e-5 * want.abs().max(1.0));
        }
        hits += items(a).iter().filter(|i| items(e).contains(i)).count();
    }
    assert!(hits >= 490, "recall@10 {hits} / 500");
    // compaction folds the segment into the base and the item into the index
    let c = compact(dir.path(), &Reporter::silent()).unwrap();
    assert_eq!((c.folded, c.items, c.indexed), (1, 3_001, 1));
    let cat = Catalogue::open(dir.path(), SearchMode::Auto).unwrap();
    assert_eq!(
        (cat.base_items(), cat.ann().map(AnnIndex::items)),
        (3_001, Some(3_001))
    );
    assert_eq!(
        items(&cat.search(&q, &[Want { k: 5, exclude: &[] }]).unwrap()[0]),
        brute(&all, &q, 5, &[])
    );
    // one index file is left, the old segment's files are gone
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".ivf")).count(),
        1,
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains(".seg-")), "{names:?}");
}

#[test]
fn an_index_over_other_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 500, 5);
    ann::build(dir.path(), &AnnParams::default(), &Reporter::silent()).unwrap();
    // the base rewritten with other rows (same count): the fingerprint differs
    write(dir.path(), 500, 6);
    let e = Catalogue::open(dir.path(), SearchMode::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("items.ann.json") && e.contains("index build"),
        "{e}"
    );
    // --exact opens it
    assert!(Catalogue::open(dir.path(), SearchMode::Exact).is_ok());
}

#[test]
fn scanning_every_list_gives_the_exact_lists_and_threads_share_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let all = write(dir.path(), 2_000, 7);
    // 32 lists, every one scanned: the candidates are the best of every row by the f16
    // scores, so the exact top 10 is among the 100 re-scored
    let params = AnnParams {
        lists: 32,
        probes: 32,
        ..AnnParams::default()
    };
    ann::build(dir.path(), &params, &Reporter::silent()).unwrap();
    let cat = Catalogue::open(dir.path(), SearchMode::Auto).unwrap();
    assert_eq!(
        cat.ann().map(|a| (a.params().lists, a.probes())),
        Some((32, 32))
    );
    let mut rng = StdRng::seed_from_u64(8);
    let qs: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..D).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let exclude = [3u32, 5];
    let want: Vec<Vec<u32>> = qs.iter().map(|q| brute(&all, q, 10, &exclude)).collect();
    // from many threads at once: the index is shared, read-only
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for (q, w) in qs.iter().zip(&want) {
                    let got = cat
                        .search(
                            q,
                            &[Want {
                                k: 10,
                                exclude: &exclude,
                            }],
                        )
                        .unwrap();
                    assert_eq!(&items(&got[0]), w);
                }
            });
        }
    });
    // one list scanned (`--probes 1`): fewer found, every score still exact
    let one = Catalogue::open(dir.path(), SearchMode::Probes(1)).unwrap();
    let got = one
        .search(
            &qs[0],
            &[Want {
                k: 10,
                exclude: &[],
            }],
        )
        .unwrap();
    for x in &got[0] {
        let want = exact_score(&all, &qs[0], x.item);
        assert!((x.score - want).abs() <= 1e-5 * want.abs().max(1.0));
    }
}

#[test]
fn a_damaged_or_older_index_is_refused_by_name_and_exact_still_ranks() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 500, 9);
    ann::build(dir.path(), &AnnParams::default(), &Reporter::silent()).unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ivf"))
        .unwrap();
    // cut short: not a safetensors file any more
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = Catalogue::open(dir.path(), SearchMode::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&*file.to_string_lossy()) && e.contains("ANN index"),
        "{e}"
    );
    // a record of the HNSW index an earlier iisan built
    let rec = dir.path().join(ann::RECORD);
    std::fs::write(
        &rec,
        r#"{"file": "items-ann-500-1.usearch", "params": {"connectivity": 32}}"#,
    )
    .unwrap();
    let e = Catalogue::open(dir.path(), SearchMode::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("items.ann.json") && e.contains("build the index again"),
        "{e}"
    );
    assert!(Catalogue::open(dir.path(), SearchMode::Exact).is_ok());
}
