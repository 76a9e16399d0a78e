//! `iisan serve --token-file`: the write routes (`POST /v1/items`, `POST /v1/reload`) answer
//! 401 with `WWW-Authenticate: Bearer` without the token or with a wrong one, and reach the
//! route with it; the read routes stay open; the token never shows in the server's output;
//! `IISAN_SERVE_TOKEN` works as well; without a token the server refuses, before any work, an
//! address other hosts can reach.

mod common;

use common::server::Server;
use common::*;
use serde_json::json;

const TOKEN: &str = "3f9c2a7d1e8b4c60a5d2f7e9b1c3a8d4";

async fn status(req: reqwest::RequestBuilder) -> (u16, Option<String>) {
    let r = req.send().await.unwrap();
    let auth = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), auth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_need_the_token_and_read_routes_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 60, 30);
    train_run(t, &run_sets(&data, "r", "id"));
    std::fs::write(t.join("token.txt"), format!("{TOKEN}\n")).unwrap();
    let s = Server::start(t, "runs/r", &["--token-file", "token.txt"]);
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.base);
    let items = json!({"items": [{"id": "NEW1", "title": "a new item"}]}).to_string();
    for route in ["/v1/items", "/v1/reload"] {
        let body = if route == "/v1/items" {
            items.clone()
        } else {
            String::new()
        };
        let post = || c.post(u(route)).body(body.clone());
        assert_eq!(
            status(post()).await,
            (401, Some("Bearer".into())),
            "{route} without"
        );
        let wrong = post().bearer_auth(format!("{TOKEN}x"));
        assert_eq!(status(wrong).await.0, 401, "{route} wrong token");
        let (st, _) = status(post().bearer_auth(TOKEN)).await;
        // an ID run cannot embed new items (422): the route itself answered
        let want = if route == "/v1/items" { 422 } else { 200 };
        assert_eq!(st, want, "{route} with the token");
    }
    let rec = json!({"history": ["S0001", "S0002"], "k": 5}).to_string();
    assert_eq!(status(c.post(u("/v1/recommend")).body(rec)).await.0, 200);
    for route in ["/health", "/info", "/metrics"] {
        assert_eq!(status(c.get(u(route))).await.0, 200, "{route}");
    }
    let (ok, err) = s.stop();
    assert!(ok, "{err}");
    assert!(!err.contains(TOKEN), "the token was printed: {err}");

    // the token from the environment
    let s = Server::start_with(t, "runs/r", &[], &[("IISAN_SERVE_TOKEN", TOKEN)]);
    let reload = |tok: Option<&str>| {
        let r = c.post(format!("{}/v1/reload", s.base));
        match tok {
            Some(tok) => r.bearer_auth(tok),
            None => r,
        }
    };
    assert_eq!(status(reload(None)).await.0, 401);
    assert_eq!(status(reload(Some(TOKEN))).await.0, 200);
    let (ok, err) = s.stop();
    assert!(ok && !err.contains(TOKEN), "{err}");
    // not both
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iisan"));
    child.env("IISAN_SERVE_TOKEN", TOKEN);
    let o = child
        .args([
            "serve",
            "runs/r",
            "--addr",
            "127.0.0.1:0",
            "--token-file",
            "token.txt",
        ])
        .current_dir(t)
        .output()
        .unwrap();
    one_line_exit_2(&o, &["IISAN_SERVE_TOKEN", "give one"]);
}

#[test]
fn open_writes_on_a_reachable_address_or_a_weak_token_are_refused_before_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 60, 30);
    train_run(t, &run_sets(&data, "r", "id"));
    let o = iisan(t, &["serve", "runs/r", "--addr", "0.0.0.0:0"]);
    one_line_exit_2(
        &o,
        &["0.0.0.0", "--token-file", "--allow-unauthenticated-writes"],
    );
    std::fs::write(t.join("weak.txt"), "secret\n").unwrap();
    let o = iisan(
        t,
        &[
            "serve",
            "runs/r",
            "--addr",
            "127.0.0.1:0",
            "--token-file",
            "weak.txt",
        ],
    );
    one_line_exit_2(&o, &["weak.txt", "at least 16"]);
}
