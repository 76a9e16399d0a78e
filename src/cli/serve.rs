//! `iisan serve RUN [--addr 127.0.0.1:8080]`: the run over HTTP (docs/SERVING.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use iisan::deploy::server::{ServeOptions, WriteToken, run};
use iisan::error::{Error, Result};

/// `iisan serve` arguments.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The run directory.
    run: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Requests admitted at once on /v1/*; more are answered 429.
    #[arg(long, default_value_t = ServeOptions::default().max_concurrent)]
    max_concurrent: usize,
    /// Largest request body in bytes; larger are answered 413.
    #[arg(long, default_value_t = ServeOptions::default().max_body)]
    max_body: usize,
    /// Histories or items per request.
    #[arg(long, default_value_t = ServeOptions::default().max_batch)]
    max_batch: usize,
    /// Threads computing recommendations (the rest of the machine answers HTTP).
    #[arg(long, default_value_t = ServeOptions::default().compute_threads)]
    compute_threads: usize,
    /// Bytes all request bodies in flight may hold together; beyond, 503.
    #[arg(long, default_value_t = ServeOptions::default().max_inflight_body)]
    max_inflight_body: usize,
    /// Open connections at most; beyond, a new one is answered 503 and closed.
    #[arg(long, default_value_t = ServeOptions::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may take to send a request head, or stay idle between requests.
    #[arg(long, default_value_t = ServeOptions::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Seconds one request may take, its body's upload included; beyond, 408.
    #[arg(long, default_value_t = ServeOptions::default().request_timeout.as_secs_f64())]
    request_timeout: f64,
    /// Seconds SIGTERM waits for open connections before the server exits anyway.
    #[arg(long, default_value_t = ServeOptions::default().shutdown_grace.as_secs_f64())]
    shutdown_grace: f64,
    /// A file holding the token that POST /v1/items and /v1/reload require as
    /// `Authorization: Bearer <token>` (or the token itself in IISAN_SERVE_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve the write routes without a token on an address other hosts can reach.
    #[arg(long)]
    allow_unauthenticated_writes: bool,
    #[command(flatten)]
    ranking: super::Ranking,
    /// Serve as a replica of a run directory another process writes: check it every SECONDS
    /// (default 2) and serve the items it gained; POST /v1/items and /v1/reload answer 403.
    #[arg(long, num_args = 0..=1, default_missing_value = "2", value_name = "SECONDS")]
    follow: Option<f64>,
}

/// The environment variable that may hold the write token itself.
const TOKEN_VAR: &str = "IISAN_SERVE_TOKEN";

/// The write token of `--token-file` or `IISAN_SERVE_TOKEN` (not both).
fn write_token(file: Option<&std::path::Path>) -> Result<Option<WriteToken>> {
    let var = std::env::var(TOKEN_VAR).ok().filter(|v| !v.is_empty());
    match (file, var) {
        (Some(_), Some(_)) => Err(Error::Input(format!(
            "--token-file and {TOKEN_VAR} both give a write token: give one"
        ))),
        (Some(f), None) => WriteToken::from_file(f).map(Some),
        (None, Some(v)) => WriteToken::new(&v, TOKEN_VAR).map(Some),
        (None, None) => Ok(None),
    }
}

/// `s` seconds as a duration; `flag` names the option in the error.
fn seconds(flag: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero() && s <= 86_400.0)
        .ok_or_else(|| Error::Input(format!("--{flag} {s}: give seconds above 0, at most 86400")))
}

/// mimalloc's `mi_option_purge_delay` (the 16th entry of `mi_option_e` in its `mimalloc.h`, v2
/// and v3 alike; the Rust binding names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `iisan serve`.
pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    // A server's memory should come back after a burst of large request bodies: the allocator
    // otherwise keeps freed memory until the thread that freed it allocates again, which idle
    // workers never do. Purging at once costs a system call per freed segment, which request
    // handling can afford (training keeps mimalloc's default delay).
    // SAFETY: sets one integer option of the process's allocator, which mimalloc allows at
    // any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let opts = ServeOptions {
        max_concurrent: a.max_concurrent.max(1),
        max_body: a.max_body,
        max_batch: a.max_batch.max(1),
        compute_threads: a.compute_threads.max(1),
        max_inflight_body: a.max_inflight_body.max(a.max_body),
        max_connections: a.max_connections.max(1),
        header_timeout: seconds("header-timeout", a.header_timeout)?,
        request_timeout: seconds("request-timeout", a.request_timeout)?,
        shutdown_grace: seconds("shutdown-grace", a.shutdown_grace)?,
        write_token: write_token(a.token_file.as_deref())?,
        allow_unauthenticated_writes: a.allow_unauthenticated_writes,
        search: a.ranking.mode(),
        follow: a.follow.map(|s| seconds("follow", s)).transpose()?,
        ..ServeOptions::default()
    };
    run(&a.run, a.addr, opts)
}
