//! Which approximate nearest-neighbour index should serve IISAN's scores (raw inner products
//! of a user state and the item embeddings)? Builds each candidate over a run's item matrix,
//! answers real user states, re-scores the candidates exactly and reports build time, recall@10
//! against the exact top 10 of the whole matrix, and one-query latency (one thread).
//!
//! Usage: `[CASES=usearch-ip:32:128,...] cargo run --release -- ITEMS.safetensors STATES.f32
//! [QUERIES]` (CASES: see `main`; the figures in docs/STACK.md section 17 came from it)
//! (STATES.f32: little-endian f32 user states, 64 or the run's width per row, e.g. written by
//! `iisan.Run.open(run).user_embeddings(histories).tofile(...)`).

use std::time::Instant;

mod ivf;

use hnsw_rs::prelude::{Distance, Hnsw};
use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

const K: usize = 10;

/// (ef_search, candidates re-scored) pairs tried on every index.
const SEARCHES: [(usize, usize); 5] = [(64, 100), (128, 100), (256, 100), (512, 100), (1024, 100)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes = std::fs::read(&args[0]).expect("items file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st.tensor("items").expect("items tensor");
    let d = t.shape()[1];
    let all: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let items = &all[d..]; // row 0 is padding; item i (from 0 here) is row i + 1
    let n = items.len() / d;
    let sb = std::fs::read(&args[1]).expect("states file");
    let mut states: Vec<f32> = sb
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let nq = args.get(2).map_or(states.len() / d, |s| s.parse().unwrap());
    states.truncate(nq * d);
    println!(
        "{n} items, d = {d}, {nq} queries, {} threads",
        rayon::current_num_threads()
    );

    let t0 = Instant::now();
    let truth: Vec<Vec<usize>> = states
        .par_chunks(d)
        .map(|q| exact_top(items, d, q, K))
        .collect();
    let exact_ms =
        t0.elapsed().as_secs_f64() * 1e3 * rayon::current_num_threads() as f64 / nq as f64;
    println!("exact scan: {exact_ms:.2} ms per query (one thread, averaged)");

    run_cases(items, d, &states, &truth);
}

/// The cases of `CASES` (default: all at M = 16, ef_add 128), one after the other.
fn run_cases(items: &[f32], d: usize, states: &[f32], truth: &[Vec<usize>]) {
    // which cases: `usearch-ip:M:EF_ADD`, `usearch-cos-ip:M:EF_ADD` (built by cosine, searched
    // by inner product), `usearch-l2aug:M:EF_ADD`, `usearch-ip-f16:M:EF_ADD`,
    // `hnsw_rs-ip:M:EF_C`, `ivf:LISTS:SAMPLE` (an inverted file: `ivf.rs`; NPROBE=a,b,.. the
    // probes tried) (default: the graphs at M = 16, 128)
    let cases = std::env::var("CASES").unwrap_or_else(|_| {
        "usearch-ip:16:128,usearch-l2aug:16:128,usearch-ip-f16:16:128,hnsw_rs-ip:16:128".into()
    });
    for case in cases.split(',') {
        let f: Vec<&str> = case.split(':').collect();
        let (m, ef): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        match f[0] {
            "usearch-ip" => usearch_case(
                items,
                d,
                states,
                truth,
                MetricKind::IP,
                ScalarKind::F32,
                m,
                ef,
            ),
            "usearch-ip-f16" => usearch_case(
                items,
                d,
                states,
                truth,
                MetricKind::IP,
                ScalarKind::F16,
                m,
                ef,
            ),
            "usearch-cos-ip" => usearch_case(
                items,
                d,
                states,
                truth,
                MetricKind::Cos,
                ScalarKind::F32,
                m,
                ef,
            ),
            "usearch-l2aug" => usearch_case(
                items,
                d,
                states,
                truth,
                MetricKind::L2sq,
                ScalarKind::F32,
                m,
                ef,
            ),
            "hnsw_rs-ip" => hnsw_rs_case(items, d, states, truth, m, ef),
            "ivf" => ivf::ivf_case(items, d, states, truth, m, ef),
            other => panic!("unknown case {other}"),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The exact top `k` items (by score, ties to the lower item).
fn exact_top(items: &[f32], d: usize, q: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, row) in items.chunks_exact(d).enumerate() {
        let s = dot(row, q);
        if best.len() == k && s <= best[k - 1].0 {
            continue;
        }
        let at = best.partition_point(|b| b.0 >= s);
        best.insert(at, (s, i));
        best.truncate(k);
    }
    best.into_iter().map(|b| b.1).collect()
}

/// Re-score candidates exactly and keep the best `K`.
fn rescore(items: &[f32], d: usize, q: &[f32], cand: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<(f32, usize)> = cand
        .map(|i| (dot(&items[i * d..(i + 1) * d], q), i))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    v.dedup_by_key(|x| x.1);
    v.truncate(K);
    v.into_iter().map(|x| x.1).collect()
}

fn recall(got: &[Vec<usize>], truth: &[Vec<usize>]) -> f64 {
    let hit: usize = got
        .iter()
        .zip(truth)
        .map(|(g, t)| g.iter().filter(|i| t.contains(i)).count())
        .sum();
    hit as f64 / (truth.len() * K) as f64
}

fn pct(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    (p(0.5), p(0.99))
}

/// The norm bound and the extra coordinate that turns inner products into distances:
/// x' = [x, sqrt(M^2 - |x|^2)], q' = [q, 0], so |q' - x'|^2 = |q|^2 + M^2 - 2 q.x.
fn augment(items: &[f32], d: usize) -> Vec<f32> {
    let m2 = items
        .chunks_exact(d)
        .map(|r| dot(r, r))
        .fold(0f32, f32::max);
    items
        .chunks_exact(d)
        .flat_map(|r| {
            let mut v = r.to_vec();
            v.push((m2 - dot(r, r)).max(0.0).sqrt());
            v
        })
        .collect()
}

fn usearch_case(
    items: &[f32],
    d: usize,
    states: &[f32],
    truth: &[Vec<usize>],
    metric: MetricKind,
    scalar: ScalarKind,
    conn: usize,
    ef_add: usize,
) {
    let aug = metric == MetricKind::L2sq;
    let data = if aug {
        augment(items, d)
    } else {
        items.to_vec()
    };
    let w = if aug { d + 1 } else { d };
    let n = items.len() / d;
    let opts = IndexOptions {
        dimensions: w,
        metric,
        quantization: scalar,
        connectivity: conn,
        expansion_add: ef_add,
        expansion_search: 64,
        multi: false,
    };
    let index = Index::new(&opts).unwrap();
    index
        .reserve_capacity_and_threads(n, rayon::current_num_threads())
        .unwrap();
    let t0 = Instant::now();
    data.par_chunks(w)
        .enumerate()
        .for_each(|(i, v)| index.add(i as u64, v).unwrap());
    let build = t0.elapsed().as_secs_f64();
    let mem = index.memory_usage() as f64 / (1 << 20) as f64;
    // built on angles, searched by inner product: the graph's neighbourhoods are those of
    // the directions, the greedy search climbs the scores
    if metric == MetricKind::Cos {
        index.change_metric_kind(MetricKind::IP).unwrap();
    }
    for (ef, cand) in SEARCHES {
        index.change_expansion_search(ef);
        let mut ms = Vec::new();
        let got: Vec<Vec<usize>> = states
            .chunks(d)
            .map(|q| {
                let t = Instant::now();
                let qq: Vec<f32> = if aug {
                    q.iter().copied().chain([0.0]).collect()
                } else {
                    q.to_vec()
                };
                let m = index.search(&qq, cand).unwrap();
                let r = rescore(items, d, q, m.keys.iter().map(|&k| k as usize));
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                r
            })
            .collect();
        let (p50, p99) = pct(ms);
        println!(
            "usearch {metric:?} {scalar:?} M={conn} ef_add={ef_add}: build {build:.1} s, {mem:.0} MiB; ef_search {ef}, {cand} candidates: recall@10 {:.4}, p50 {p50:.3} ms, p99 {p99:.3} ms",
            recall(&got, truth)
        );
    }
    let _ = n;
}

/// hnsw_rs's own DistDot asserts unit vectors; inner products as a distance, offset so that
/// they stay positive (the offset bounds every |q . x| of this data).
#[derive(Clone, Copy)]
struct NegDot(f32);

impl Distance<f32> for NegDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        self.0 - dot(a, b)
    }
}

fn hnsw_rs_case(
    items: &[f32],
    d: usize,
    states: &[f32],
    truth: &[Vec<usize>],
    conn: usize,
    ef_c: usize,
) {
    let norm = |v: &[f32]| dot(v, v).sqrt();
    let xmax = items.chunks_exact(d).map(norm).fold(0f32, f32::max);
    let qmax = states.chunks_exact(d).map(norm).fold(0f32, f32::max);
    let data = items.to_vec();
    let w = d;
    let n = items.len() / d;
    let hnsw = Hnsw::<f32, NegDot>::new(conn, n, 16, ef_c, NegDot(xmax * xmax.max(qmax)));
    let t0 = Instant::now();
    let refs: Vec<(&[f32], usize)> = data
        .chunks_exact(w)
        .enumerate()
        .map(|(i, v)| (v, i))
        .collect();
    hnsw.parallel_insert_slice(&refs);
    let build = t0.elapsed().as_secs_f64();
    for (ef, cand) in SEARCHES {
        let mut ms = Vec::new();
        let got: Vec<Vec<usize>> = states
            .chunks(d)
            .map(|q| {
                let t = Instant::now();
                let m = hnsw.search(q, cand, ef);
                let r = rescore(items, d, q, m.iter().map(|x| x.d_id));
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                r
            })
            .collect();
        let (p50, p99) = pct(ms);
        println!(
            "hnsw_rs inner product M={conn} ef_c={ef_c}: build {build:.1} s; ef_search {ef}, {cand} candidates: recall@10 {:.4}, p50 {p50:.3} ms, p99 {p99:.3} ms",
            recall(&got, truth)
        );
    }
}
