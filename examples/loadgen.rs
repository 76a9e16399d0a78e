//! Load generator for `iisan serve` (scripts/bench/serve.sh runs it): `--requests` requests
//! from `--clients` concurrent loopback clients, each a `POST /v1/recommend` of one history
//! from `--histories` (one per line), except a `--malformed` fraction of broken requests
//! (truncated JSON, an unknown id, k = 0, in turn) and an `--items` fraction of
//! `POST /v1/items` adding one new item (a fresh id and a title from `--titles`). Prints one
//! JSON object: counts by status, latency percentiles, requests/s, and the two checks (no 5xx,
//! every malformed request answered 4xx).
//!
//! Usage: `cargo run --release --example loadgen -- --url http://127.0.0.1:PORT
//!         --histories H.txt [--titles T.txt] [--requests 10000] [--clients 32]
//!         [--malformed 0.05] [--items 0] [--seed 1]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Recommend,
    Malformed,
    Items,
}

struct Args {
    url: String,
    histories: Vec<Vec<String>>,
    titles: Vec<String>,
    requests: usize,
    clients: usize,
    malformed: f64,
    items: f64,
    seed: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        url: String::new(),
        histories: Vec::new(),
        titles: vec!["a new item".into()],
        requests: 10_000,
        clients: 32,
        malformed: 0.05,
        items: 0.0,
        seed: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        match pair[0].as_str() {
            "--url" => a.url = v,
            "--histories" => {
                a.histories = read(&v)
                    .lines()
                    .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
                    .filter(|h| !h.is_empty())
                    .collect()
            }
            "--titles" => a.titles = read(&v).lines().map(String::from).collect(),
            "--requests" => a.requests = v.parse().expect("--requests"),
            "--clients" => a.clients = v.parse().expect("--clients"),
            "--malformed" => a.malformed = v.parse().expect("--malformed"),
            "--items" => a.items = v.parse().expect("--items"),
            "--seed" => a.seed = v.parse().expect("--seed"),
            f => panic!("unknown flag {f}"),
        }
    }
    assert!(
        !a.url.is_empty() && !a.histories.is_empty(),
        "need --url and --histories"
    );
    a
}

/// The kind of request `i`: a deterministic spread of the malformed and items fractions.
fn kind(i: usize, a: &Args) -> Kind {
    // a multiplicative hash of (i, seed) mapped to [0, 1)
    let h =
        (i as u64 ^ a.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < a.malformed {
        Kind::Malformed
    } else if u < a.malformed + a.items {
        Kind::Items
    } else {
        Kind::Recommend
    }
}

fn request(i: usize, k: Kind, a: &Args) -> (String, String) {
    let h = &a.histories[i % a.histories.len()];
    match k {
        Kind::Recommend => (
            "/v1/recommend".into(),
            json!({"history": h, "k": 10}).to_string(),
        ),
        Kind::Items => {
            let title = &a.titles[i % a.titles.len()];
            let item = json!({"id": format!("load-{}-{i}", a.seed), "title": title});
            ("/v1/items".into(), json!({"items": [item]}).to_string())
        }
        Kind::Malformed => {
            let body = match i % 3 {
                0 => "{\"history\": [\"".to_string(),
                1 => json!({"history": ["no-such-item"]}).to_string(),
                _ => json!({"history": h, "k": 0}).to_string(),
            };
            ("/v1/recommend".into(), body)
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = Arc::new(parse_args());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (a, client, next) = (a.clone(), client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.requests {
                    return out;
                }
                let k = kind(i, &a);
                let (path, body) = request(i, k, &a);
                let t = Instant::now();
                let status = match client
                    .post(format!("{}{path}", a.url))
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                out.push((k, status, t.elapsed().as_secs_f64()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&all, secs);
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1] * 1e3
}

fn report(all: &[(Kind, u16, f64)], secs: f64) {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (_, s, _) in all {
        *by_status.entry(s.to_string()).or_default() += 1;
    }
    let lat = |k: Kind| {
        let mut v: Vec<f64> = all.iter().filter(|x| x.0 == k).map(|x| x.2).collect();
        v.sort_by(f64::total_cmp);
        json!({"n": v.len(), "p50_ms": pct(&v, 0.5), "p99_ms": pct(&v, 0.99), "max_ms": pct(&v, 1.0)})
    };
    let mut ok: Vec<f64> = all
        .iter()
        .filter(|x| x.0 == Kind::Recommend)
        .map(|x| x.2)
        .collect();
    ok.sort_by(f64::total_cmp);
    let server_errors = all.iter().filter(|x| x.1 >= 500 || x.1 == 0).count();
    let malformed_not_4xx = all
        .iter()
        .filter(|x| x.0 == Kind::Malformed && !(400..500).contains(&x.1))
        .count();
    let out = json!({
        "requests": all.len(),
        "seconds": secs,
        "requests_per_second": all.len() as f64 / secs,
        "by_status": by_status,
        "recommend": lat(Kind::Recommend),
        "malformed": lat(Kind::Malformed),
        "items": lat(Kind::Items),
        "server_errors_or_failed": server_errors,
        "malformed_not_4xx": malformed_not_4xx,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
