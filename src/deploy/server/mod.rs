//! `iisan serve RUN`: a finished run over HTTP on axum + tokio (routes in [`routes`], formats
//! in docs/SERVING.md). Recommendations are computed on one compute thread in micro-batches
//! ([`batcher`]); `POST /v1/items`, `POST /v1/reload` and SIGHUP swap the user encoder and
//! the item matrix together ([`state`]); SIGTERM and Ctrl-C stop accepting connections and
//! let the requests in flight finish, for a bounded time ([`connections`]). Every request is
//! held to the bounds of [`bodies`]; docs/SECURITY.md lists them. With a write token, the
//! routes that change what is served need it ([`auth`]).

pub mod adds;
pub mod auth;
pub mod batcher;
pub mod bodies;
pub mod connections;
pub mod error;
pub mod follow;
pub mod metrics;
pub mod requests;
pub mod responses;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::error::{Error, Result};
pub use auth::WriteToken;
use auth::check_exposure;
use bodies::BodyBounds;
use connections::{ConnectionLimits, serve_connections};
use state::AppState;

/// The server's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Requests on `/v1/*` admitted at once; more get 429.
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger gets 413 (a declared one before it is read).
    pub max_body: usize,
    /// Bytes all request bodies in flight may hold together; a request whose body does not
    /// fit gets 503.
    pub max_inflight_body: usize,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long a connection may take to send a request head (also how long an idle
    /// keep-alive connection is kept).
    pub header_timeout: Duration,
    /// How long one request may take, body upload included; longer gets 408.
    pub request_timeout: Duration,
    /// How long a stop waits for open connections before the server exits anyway.
    pub shutdown_grace: Duration,
    /// Histories (or items) per request.
    pub max_batch: usize,
    /// Histories the compute thread answers per matrix product.
    pub batch_rows: usize,
    /// Threads of the compute pool (the user encoder and the scores of a batch).
    pub compute_threads: usize,
    /// The token `POST /v1/items` and `POST /v1/reload` require (`None`: they are open).
    pub write_token: Option<WriteToken>,
    /// Serve open write routes on an address other hosts can reach.
    pub allow_unauthenticated_writes: bool,
    /// Rank through the run's ANN index when it has one, or always exactly (`--exact`).
    pub search: crate::catalogue::SearchMode,
    /// Follow the run directory another process writes, checking it this often (a replica:
    /// its write routes answer 403); `None`: serve and write it.
    pub follow: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent: 256,
            max_body: 16 << 20,
            max_inflight_body: 256 << 20,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            max_batch: 1024,
            batch_rows: 256,
            search: crate::catalogue::SearchMode::Auto,
            follow: None,
            compute_threads: 1,
            write_token: None,
            allow_unauthenticated_writes: false,
        }
    }
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let o = &state.opts;
    let bounds = BodyBounds::new(o.max_body, o.max_inflight_body, o.request_timeout);
    // the routes that change what is served need the write token, where there is one
    let writes = match o.follow {
        // a replica: what it serves comes from the writer, through the run directory
        Some(_) => Router::new()
            .route("/items", post(routes::read_only))
            .route("/reload", post(routes::read_only)),
        None => Router::new()
            .route("/items", post(routes::add_items))
            .route("/reload", post(routes::reload))
            .route_layer(from_fn_with_state(state.clone(), auth::require_token)),
    };
    let v1 = Router::new()
        .route("/recommend", post(routes::recommend))
        .merge(writes)
        .route_layer(from_fn_with_state(state.clone(), routes::admit));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(routes::health))
        .route("/info", get(routes::info))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(from_fn_with_state(bounds, bodies::bound))
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(state.opts.max_body))
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` completes, then let the requests in flight
/// finish, for at most the options' `shutdown_grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let o = &state.opts;
    let limits = ConnectionLimits {
        max_connections: o.max_connections,
        header_timeout: o.header_timeout,
        shutdown_grace: o.shutdown_grace,
    };
    let stopped = serve_connections(listener, router(state.clone()), limits, shutdown).await;
    if stopped.abandoned > 0 {
        eprintln!(
            "{} connections still open after {} s: closed",
            stopped.abandoned,
            limits.shutdown_grace.as_secs_f64()
        );
    }
    Ok(())
}

/// Open run `run`, listen on `addr` (port 0: any free port; the chosen address is printed as
/// `listening on http://ADDR`), and serve until SIGTERM or Ctrl-C; SIGHUP reloads the run.
pub fn run(run: &Path, addr: SocketAddr, opts: ServeOptions) -> Result<()> {
    if opts.follow.is_none() {
        check_exposure(
            addr.ip(),
            opts.write_token.as_ref(),
            opts.allow_unauthenticated_writes,
        )?;
    }
    let state = Arc::new(AppState::open(run, opts)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Input(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("listener: {e}")))?;
        println!(
            "listening on http://{local} ({} method, {} items)",
            state.facts().method,
            state.current().catalogue().num_items()
        );
        reload_on_sighup(state.clone())?;
        if let Some(every) = state.opts.follow {
            follow::follow(state.clone(), every);
        }
        serve(listener, state, stop_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// Reload the run on every SIGHUP (errors are printed; the old model stays).
fn reload_on_sighup(state: Arc<AppState>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| Error::Internal(format!("cannot handle SIGHUP: {e}")))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match state.reload().await {
                Ok(m) => eprintln!(
                    "SIGHUP: reloaded {} ({} items, generation {})",
                    state.run.display(),
                    m.catalogue().num_items(),
                    state.generation()
                ),
                Err(e) => eprintln!("SIGHUP: reload failed, serving the previous model: {e}"),
            }
        }
    });
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
