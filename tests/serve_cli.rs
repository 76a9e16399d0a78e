//! `iisan serve` as a user runs it: the real binary on an ephemeral loopback port, spoken to
//! over HTTP. Every route and every error status; items added over HTTP ranked at once; a
//! reload (POST /v1/reload and SIGHUP) that swaps in another run's model while clients keep
//! asking never answers with one run's user encoder over the other's item matrix; SIGTERM
//! stops the server cleanly.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use common::server::Server;
use common::*;
use serde_json::{Value, json};

async fn post(c: &reqwest::Client, url: String, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = c.post(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(c: &reqwest::Client, url: String) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

/// The CLI's answer for `history` (the same code path as evaluation).
fn cli_top(cwd: &Path, run: &str, history: &str, k: &str) -> Value {
    let o = iisan(
        cwd,
        &["recommend", run, "--history", history, "-k", k, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

/// The test's fixture: a temporary directory with the data, two runs (r1, r2 with another
/// seed) and `runs/served`, a copy of r1 that the server serves.
struct Fixture {
    tmp: tempfile::TempDir,
    data: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = encoded_synth(t, 120, 50);
    train_run(t, &run_sets(&data, "r1", "iisan"));
    let mut r2 = run_sets(&data, "r2", "iisan");
    r2.push("train.seed=7".into());
    train_run(t, &r2);
    let served = t.join("runs/served");
    std::fs::create_dir_all(&served).unwrap();
    for e in std::fs::read_dir(t.join("runs/r1")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), served.join(e.file_name())).unwrap();
    }
    Fixture { tmp, data }
}

const HISTORY: &str = "S0003 S0004 S0007";

fn history() -> Vec<&'static str> {
    HISTORY.split(' ').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_every_route_and_error_and_reloads_atomically() {
    let f = fixture();
    let t = f.tmp.path();
    let s = Server::start(t, "runs/served", &["--max-body", "100000"]);
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.base);
    routes_answer(&c, &u, t).await;
    errors_are_json(&c, &u).await;
    items_are_ranked_at_once(&c, &u, &f.data).await;
    reload_under_load(&c, &u, t).await;
    sighup_reloads(&c, &u, &s).await;
    let (_, m) = get(&c, u("/metrics")).await;
    for line in [
        r#"iisan_requests_total{route="/v1/recommend",status="422"} 1"#,
        r#"iisan_requests_total{route="/v1/recommend",status="413"} 1"#,
        r#"iisan_requests_total{route="/v1/items",status="409"} 1"#,
        "iisan_request_duration_seconds_bucket{route=\"/v1/recommend\",le=\"+Inf\"}",
        "iisan_catalogue_items 50",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    let (ok, err) = s.stop();
    assert!(ok && err.contains("stopped"), "{err}");
}

/// /health, /info, one history (the CLI's answer), a batch.
async fn routes_answer(c: &reqwest::Client, u: &impl Fn(&str) -> String, t: &Path) {
    let (st, body) = get(c, u("/health")).await;
    assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (st, body) = get(c, u("/info")).await;
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        (info["method"].as_str(), info["items"].as_u64()),
        (Some("iisan"), Some(50))
    );
    assert_eq!(info["towers"].as_array().unwrap().len(), 2);
    // clients see the run's name and the towers' hashes, never a file-system path
    assert_eq!(info["run"], "served");
    assert!(!body.contains('/'), "{body}");
    let one = json!({"history": history(), "k": 5}).to_string();
    let (st, one) = post(c, u("/v1/recommend"), one).await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(ids(&one), ids(&cli_top(t, "runs/served", HISTORY, "5")));
    let batch = json!({"histories": [history(), vec!["S0001"]], "k": 3, "exclude_history": true});
    let (st, b) = post(c, u("/v1/recommend"), batch.to_string()).await;
    assert_eq!(st, 200);
    assert_eq!(b["results"].as_array().unwrap().len(), 2);
    assert!(!ids(&b["results"][1]).contains(&"S0001".to_string()));
}

/// 400 malformed, 400 both fields, 400 k = 0, 422 unknown id, 413 too large, 404 no route,
/// 405 wrong method; each a JSON error with the status and a message.
async fn errors_are_json(c: &reqwest::Client, u: &impl Fn(&str) -> String) {
    let both = json!({"history": ["S0001"], "histories": [["S0001"]]}).to_string();
    let huge = json!({"history": vec!["S0001"; 20000]}).to_string();
    for (body, want, msg) in [
        ("{\"history\": [".to_string(), 400, "invalid JSON"),
        (both, 400, "exactly one of history, histories"),
        (
            json!({"history": ["S0001"], "k": 0}).to_string(),
            400,
            "k = 0",
        ),
        (
            json!({"history": ["S0001", "NOPE"]}).to_string(),
            422,
            "unknown item id NOPE",
        ),
        (huge, 413, "the limit is 100000 bytes"),
    ] {
        let (st, v) = post(c, u("/v1/recommend"), body).await;
        assert_eq!(st, want, "{v}");
        assert_eq!(v["error"]["status"], want);
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{v}");
    }
    assert_eq!(get(c, u("/nope")).await.0, 404);
    assert_eq!(get(c, u("/v1/recommend")).await.0, 405);
}

/// A copy of S0001 (title + base64 image) added over HTTP scores like it at once; a repeat is
/// 409, bad base64 400, a missing image 422.
async fn items_are_ranked_at_once(c: &reqwest::Client, u: &impl Fn(&str) -> String, data: &Path) {
    let title = std::fs::read_to_string(data.join("items.tsv")).unwrap();
    let title = title
        .lines()
        .next()
        .unwrap()
        .split_once('\t')
        .unwrap()
        .1
        .to_string();
    let png = std::fs::read(data.join("images/S0001.png")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let add = json!({"items": [{"id": "COPY", "title": title, "image": b64}]}).to_string();
    let (st, v) = post(c, u("/v1/items"), add.clone()).await;
    assert_eq!((st, v["items"].as_u64()), (200, Some(51)), "{v}");
    let all = json!({"history": history(), "k": 51}).to_string();
    let (_, all) = post(c, u("/v1/recommend"), all).await;
    let score = |id: &str| {
        let list = all["items"].as_array().unwrap();
        list.iter().find(|x| x["id"] == id).unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    assert!((score("COPY") - score("S0001")).abs() < 1e-3);
    let (st, v) = post(c, u("/v1/items"), add).await;
    assert_eq!(st, 409, "{v}");
    let bad = json!({"items": [{"id": "X", "title": "t", "image": "%%%"}]}).to_string();
    assert_eq!(post(c, u("/v1/items"), bad).await.0, 400);
    let noimg = json!({"items": [{"id": "Y", "title": "t"}]}).to_string();
    assert_eq!(post(c, u("/v1/items"), noimg).await.0, 422);
}

/// Swap r2's model in (POST /v1/reload) while four clients keep asking: every answer is
/// exactly r1's or r2's, and both occur.
async fn reload_under_load(c: &reqwest::Client, u: &impl Fn(&str) -> String, t: &Path) {
    let old = cli_top(t, "runs/served", HISTORY, "10");
    let new = cli_top(t, "runs/r2", HISTORY, "10");
    assert_ne!(ids(&old), ids(&new), "the two runs must rank differently");
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (c, url, stop) = (c.clone(), u("/v1/recommend"), stop.clone());
        let body = json!({"history": history(), "k": 10}).to_string();
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (st, v) = post(&c, url.clone(), body.clone()).await;
                assert_eq!(st, 200, "{v}");
                answers.push(v);
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // each file replaced as iisan replaces files, by a rename: the server memory-maps the
    // item matrix, so bytes written over it in place would change what it serves at once
    for f in [
        "best.safetensors",
        "items.safetensors",
        "item_ids.txt",
        "config.toml",
    ] {
        let (to, tmp) = (
            t.join("runs/served").join(f),
            t.join("runs/served/copy.tmp"),
        );
        std::fs::copy(t.join("runs/r2").join(f), &tmp).unwrap();
        std::fs::rename(&tmp, &to).unwrap();
    }
    let (st, v) = post(c, u("/v1/reload"), "").await;
    assert_eq!((st, v["items"].as_u64()), (200, Some(50)), "{v}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut n_old, mut n_new) = (0, 0);
    for cl in clients {
        for a in cl.await.unwrap() {
            match (same_answer(&a, &old), same_answer(&a, &new)) {
                (true, _) => n_old += 1,
                (_, true) => n_new += 1,
                _ => panic!("an answer from neither model: {a}"),
            }
        }
    }
    assert!(n_old > 0 && n_new > 0, "old {n_old}, new {n_new}");
}

/// The same ids in the same order with the same scores (to 1e-4: batches of other sizes may
/// round differently).
fn same_answer(a: &Value, b: &Value) -> bool {
    let (x, y) = (
        a["items"].as_array().unwrap(),
        b["items"].as_array().unwrap(),
    );
    ids(a) == ids(b)
        && x.iter().zip(y).all(|(x, y)| {
            (x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap()).abs() < 1e-4
        })
}

/// SIGHUP reloads: the generation /info reports goes up by one.
async fn sighup_reloads(c: &reqwest::Client, u: &impl Fn(&str) -> String, s: &Server) {
    let generation =
        |body: String| serde_json::from_str::<Value>(&body).unwrap()["generation"].as_u64();
    let before = generation(get(c, u("/info")).await.1);
    s.signal("-HUP");
    let mut after = before;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = generation(get(c, u("/info")).await.1);
        if after > before {
            break;
        }
    }
    assert_eq!(after, before.map(|g| g + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_429() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = encoded_synth(t, 60, 30);
    train_run(t, &run_sets(&data, "r", "iisan"));
    let s = Server::start(t, "runs/r", &["--max-concurrent", "1"]);
    let c = reqwest::Client::new();
    // the first POST /v1/items opens the towers (hashing and loading ~180 MB): it holds the
    // only slot for far longer than the 429 check below takes
    let slow = {
        let (c, url) = (c.clone(), format!("{}/v1/items", s.base));
        let body = json!({"items": [{"id": "N1", "title": "lamp"}]}).to_string();
        tokio::spawn(async move { post(&c, url, body).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("{}/v1/recommend", s.base);
    let (st, v) = post(&c, url, json!({"history": ["S0001"]}).to_string()).await;
    assert_eq!(st, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("busy"));
    // health stays outside the limit; the slow request itself was answered (422: no image)
    assert_eq!(get(&c, format!("{}/health", s.base)).await.0, 200);
    assert_eq!(slow.await.unwrap().0, 422);
    assert!(s.stop().0);
}
