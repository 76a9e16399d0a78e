//! The server's bounds against clients that hold connections or send too much, spoken to
//! over raw TCP on loopback (docs/SECURITY.md, "Server"): the connection limit answers 503,
//! idle and slow-header connections are closed after the header timeout, a declared oversized
//! body is 413 before it is sent, a slow body is 408, the in-flight body budget answers 503,
//! and SIGTERM ends within the grace period while clients keep connections open.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::server::Server;
use common::*;

/// A small trained `id` run `runs/r` in `t` (no towers: starts in a moment).
fn id_run(t: &Path) {
    let data = small_synth(t, "d", 40, 20);
    train_run(t, &run_sets(&data, "r", "id"));
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Everything the server sends until it closes the connection or is silent for the read
/// timeout; `None` in the text's place when it closed without a byte.
fn answer(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed `c` (a read returns end of file or a reset) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn connections_are_limited_timed_out_and_bodies_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    id_run(t);
    let flags = [
        "--max-connections",
        "4",
        "--header-timeout",
        "1",
        "--request-timeout",
        "1",
        "--max-body",
        "1000",
        "--max-inflight-body",
        "2048",
    ];
    let s = Server::start(t, "runs/r", &flags);
    // four idle connections fill the limit: a fifth is answered 503 and closed
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect(&s)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = connect(&s);
    let a = answer(&mut fifth);
    assert!(a.starts_with("HTTP/1.1 503"), "{a}");
    assert!(a.contains("too many connections: the limit is 4"), "{a}");
    // the header timeout closes idle connections (1 s), freeing the limit
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(3)),
            "an idle connection stayed open"
        );
    }
    let mut c = connect(&s);
    c.write_all(b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    assert!(answer(&mut c).starts_with("HTTP/1.1 200"));
    // a request head sent too slowly is cut off
    let mut slow_head = connect(&s);
    slow_head.write_all(b"GET /hea").unwrap();
    assert!(closed_within(&mut slow_head, Duration::from_secs(3)));
    // a declared body over the limit: 413 at once, before a byte of it is sent
    let mut big = connect(&s);
    let t0 = Instant::now();
    big.write_all(b"POST /v1/recommend HTTP/1.1\r\nhost: t\r\ncontent-length: 100000000\r\n\r\n")
        .unwrap();
    let a = answer(&mut big);
    assert!(a.starts_with("HTTP/1.1 413"), "{a}");
    // the unread body stays on the connection: the answer closes it, so no client reuses it
    assert!(a.to_ascii_lowercase().contains("connection: close"), "{a}");
    assert!(
        a.contains("declares 100000000 bytes; the limit is 1000 bytes"),
        "{a}"
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // two bodies of 1000 declared bytes hold the 2 KiB budget; a third is 503 while they wait,
    // and each waiting one ends 408 when its body does not arrive within the request timeout
    let head = b"POST /v1/recommend HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n{\"hist";
    let mut waiting: Vec<TcpStream> = (0..2).map(|_| connect(&s)).collect();
    for w in &mut waiting {
        w.write_all(head).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect(&s);
    third.write_all(head).unwrap();
    let a = answer(&mut third);
    assert!(a.starts_with("HTTP/1.1 503"), "{a}");
    assert!(a.to_ascii_lowercase().contains("connection: close"), "{a}");
    assert!(a.contains("request bodies in flight"), "{a}");
    for w in &mut waiting {
        let a = answer(w);
        assert!(a.starts_with("HTTP/1.1 408"), "{a}");
    }
    assert!(s.stop().0);
}

#[test]
fn sigterm_ends_within_the_grace_period_while_clients_hold_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    id_run(t);
    let flags = ["--shutdown-grace", "2", "--request-timeout", "60"];
    let s = Server::start(t, "runs/r", &flags);
    let mut held: Vec<TcpStream> = (0..20).map(|_| connect(&s)).collect();
    // one request in flight whose body never arrives keeps its connection busy
    let mut busy = connect(&s);
    busy.write_all(b"POST /v1/recommend HTTP/1.1\r\nhost: t\r\ncontent-length: 500\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (ok, err) = s.stop();
    let took = t0.elapsed();
    assert!(ok, "{err}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        err.contains("1 connections still open after 2 s: closed"),
        "{err}"
    );
    assert!(err.contains("stopped"), "{err}");
    // every held connection is closed by then
    for c in held.iter_mut().chain([&mut busy]) {
        assert!(closed_within(c, Duration::from_secs(1)));
    }
}
