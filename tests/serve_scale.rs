//! The catalogue under real servers: `kill -9` in the middle of items being added to a
//! million-item run leaves a catalogue (and ANN index) that opens and holds every item whose
//! addition was acknowledged, and nothing half-written; replicas started with `--follow`
//! serve what the writer adds (and what a compaction folds) without a restart, and refuse
//! writes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::server::Server;
use common::*;
use iisan::catalogue::{Catalogue, SearchMode};
use serde_json::{Value, json};

/// An IISAN run `runs/r` over 50 synthetic items; returns the first item's title and image
/// (base64), what new items are made of.
fn iisan_run(t: &Path) -> (String, String) {
    let data = encoded_synth(t, 120, 50);
    train_run(t, &run_sets(&data, "r", "iisan"));
    let items = std::fs::read_to_string(data.join("items.tsv")).unwrap();
    let title = items.lines().next().unwrap().split_once('\t').unwrap().1;
    let png = std::fs::read(data.join("images/S0001.png")).unwrap();
    (
        title.to_string(),
        base64::engine::general_purpose::STANDARD.encode(png),
    )
}

fn add_body(id: &str, (title, image): &(String, String)) -> String {
    json!({"items": [{"id": id, "title": title, "image": image}]}).to_string()
}

async fn post(c: &reqwest::Client, url: String, body: String) -> Option<(u16, Value)> {
    let r = c.post(url).body(body).send().await.ok()?;
    let st = r.status().as_u16();
    Some((st, r.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_adding_items_to_a_million_keeps_every_acknowledged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let item = iisan_run(t);
    let o = iisan(
        t,
        &[
            "index", "synth", "runs/r", "--items", "1000000", "--out", "runs/big",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // a coarse index (256 lists: built in seconds), so that an index is opened after each
    // kill too
    let build = ["index", "build", "runs/big", "--lists", "256"];
    let o = iisan(t, &build);
    assert!(o.status.success(), "{}", stderr(&o));
    let (big, base) = (t.join("runs/big"), 1_000_050);
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0;
    let c = reqwest::Client::new();
    for (round, delay_ms) in [(0, 0u64), (1, 5), (2, 40)] {
        let s = Server::start(t, "runs/big", &[]);
        let url = format!("{}/v1/items", s.base);
        // a few acknowledged additions, then one killed in flight
        for _ in 0..3 {
            n += 1;
            let id = format!("NEW-{n}");
            let (st, v) = post(&c, url.clone(), add_body(&id, &item)).await.unwrap();
            assert_eq!(st, 200, "round {round}: {v}");
            acked.push(id);
        }
        n += 1;
        let in_flight = format!("NEW-{n}");
        let (c2, url2, body) = (c.clone(), url.clone(), add_body(&in_flight, &item));
        let req = tokio::spawn(async move { post(&c2, url2, body).await });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        s.signal("-KILL");
        let answered = req.await.unwrap();
        drop(s);
        let cat = Catalogue::open(&big, SearchMode::Auto).unwrap();
        assert!(cat.ann().is_some());
        for id in &acked {
            let row = cat.row_of(id).unwrap_or_else(|| panic!("{id} lost"));
            assert!(cat.row(row).iter().all(|x| x.is_finite()));
        }
        // the item in flight is there whole or not at all; if it was answered, it is there
        match cat.row_of(&in_flight) {
            Some(_) => acked.push(in_flight),
            None => assert!(answered.is_none(), "{in_flight} answered but lost"),
        }
        assert_eq!(cat.num_items(), base + acked.len(), "round {round}");
    }
}

async fn info(c: &reqwest::Client, base: &str) -> Value {
    let r = c.get(format!("{base}/info")).send().await.unwrap();
    r.json().await.unwrap()
}

/// Poll the replica's /info until it serves `items` items (at most 10 s).
async fn until_items(c: &reqwest::Client, base: &str, items: u64) {
    let t0 = Instant::now();
    while info(c, base).await["items"].as_u64() != Some(items) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "replica never reached {items}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_writer_through_appends_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let item = iisan_run(t);
    let writer = Server::start(t, "runs/r", &[]);
    let replica = Server::start(t, "runs/r", &["--follow", "0.1"]);
    let c = reqwest::Client::new();
    let add = |base: &str| format!("{base}/v1/items");
    let (st, v) = post(&c, add(&replica.base), add_body("A", &item))
        .await
        .unwrap();
    assert_eq!(st, 403, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("--follow"));
    let (st, _) = post(&c, format!("{}/v1/reload", replica.base), String::new())
        .await
        .unwrap();
    assert_eq!(st, 403);
    let (st, v) = post(&c, add(&writer.base), add_body("A", &item))
        .await
        .unwrap();
    assert_eq!((st, v["items"].as_u64()), (200, Some(51)), "{v}");
    until_items(&c, &replica.base, 51).await;
    let rec = json!({"history": ["A", "S0002"], "k": 3}).to_string();
    let (st, v) = post(&c, format!("{}/v1/recommend", replica.base), rec.clone())
        .await
        .unwrap();
    assert_eq!(st, 200, "{v}");
    // a compaction by another process: the replica reopens the new base, the writer appends
    // to the new base's segment
    let o = iisan(t, &["index", "compact", "runs/r"]);
    assert_eq!(
        stdout(&o).trim(),
        "51 items: 1 folded into the base, 0 added to the ANN index"
    );
    let (st, v) = post(&c, add(&writer.base), add_body("B", &item))
        .await
        .unwrap();
    assert_eq!((st, v["items"].as_u64()), (200, Some(52)), "{v}");
    until_items(&c, &replica.base, 52).await;
    let cat = Catalogue::open(&t.join("runs/r"), SearchMode::Exact).unwrap();
    assert_eq!((cat.base_items(), cat.num_items()), (51, 52));
    let (st, _) = post(&c, format!("{}/v1/recommend", replica.base), rec)
        .await
        .unwrap();
    assert_eq!(st, 200);
    // without an ANN index every item is scanned
    let m = c
        .get(format!("{}/metrics", replica.base))
        .send()
        .await
        .unwrap();
    let m = m.text().await.unwrap();
    assert!(m.contains("iisan_catalogue_scanned_items 52"), "{m}");
    let (ok, err) = replica.stop();
    assert!(ok && err.contains("followed"), "{err}");
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additions_sent_together_are_grouped_and_each_answered_as_if_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let item = iisan_run(t);
    let s = Server::start(t, "runs/r", &[]);
    let c = reqwest::Client::new();
    let url = format!("{}/v1/items", s.base);
    // the first addition opens the towers (hashing and loading them): the requests sent with
    // it wait for the writer meanwhile
    let g0 = info(&c, &s.base).await["generation"].as_u64().unwrap();
    // twelve at once: ten new ids, one repeating N1, one without the image the run needs
    let mut bodies: Vec<String> = (1..=10)
        .map(|i| add_body(&format!("N{i}"), &item))
        .collect();
    bodies.push(add_body("N1", &item));
    bodies.push(json!({"items": [{"id": "NOIMG", "title": "a lamp"}]}).to_string());
    let sent = bodies.into_iter().map(|b| {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move { post(&c, url, b).await.unwrap() })
    });
    let mut answers = Vec::new();
    for h in sent.collect::<Vec<_>>() {
        answers.push(h.await.unwrap());
    }
    // N2..N10 added; of the two N1 exactly one added and one refused (409); NOIMG 422
    for (st, v) in &answers[1..10] {
        assert_eq!(*st, 200, "{v}");
    }
    let mut n1 = [answers[0].0, answers[10].0];
    n1.sort();
    assert_eq!(n1, [200, 409], "{answers:?}");
    assert_eq!(answers[11].0, 422, "{:?}", answers[11]);
    let cat = Catalogue::open(&t.join("runs/r"), SearchMode::Exact).unwrap();
    assert_eq!(cat.num_items(), 50 + 10);
    for i in 1..=10 {
        assert!(cat.row_of(&format!("N{i}")).is_some(), "N{i}");
    }
    assert!(cat.row_of("NOIMG").is_none());
    // fewer swaps than additions: requests that waited for the writer were committed together
    let g1 = info(&c, &s.base).await["generation"].as_u64().unwrap();
    assert!(g1 - g0 < 10, "{g0} -> {g1}: every addition committed alone");
    assert!(s.stop().0);
}
