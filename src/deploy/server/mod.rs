//! `iisan serve RUN`: a finished run over HTTP on axum + tokio (routes in [`routes`], formats
//! in docs/SERVING.md). Recommendations are computed on one compute thread in micro-batches
//! ([`batcher`]); `POST /v1/items`, `POST /v1/reload` and SIGHUP swap the user encoder and
//! the item matrix together ([`state`]); SIGTERM and Ctrl-C stop accepting connections and
//! let the requests in flight finish.

pub mod batcher;
pub mod error;
pub mod metrics;
pub mod responses;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::error::{Error, Result};
use state::AppState;

/// The server's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Requests on `/v1/*` admitted at once; more get 429.
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger gets 413.
    pub max_body: usize,
    /// Histories (or items) per request.
    pub max_batch: usize,
    /// Histories the compute thread answers per matrix product.
    pub batch_rows: usize,
    /// Threads of the compute pool (the user encoder and the scores of a batch).
    pub compute_threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent: 256,
            max_body: 16 << 20,
            max_batch: 1024,
            batch_rows: 256,
            compute_threads: 1,
        }
    }
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/recommend", post(routes::recommend))
        .route("/items", post(routes::add_items))
        .route("/reload", post(routes::reload))
        .route_layer(from_fn_with_state(state.clone(), routes::admit));
    Router::new()
        .nest("/v1", v1)
        .route("/health", get(routes::health))
        .route("/info", get(routes::info))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(state.opts.max_body))
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` completes, then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")))
}

/// Open run `run`, listen on `addr` (port 0: any free port; the chosen address is printed as
/// `listening on http://ADDR`), and serve until SIGTERM or Ctrl-C; SIGHUP reloads the run.
pub fn run(run: &Path, addr: SocketAddr, opts: ServeOptions) -> Result<()> {
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
            state.method,
            state.current().items().dim(0).unwrap_or(1) - 1
        );
        reload_on_sighup(state.clone())?;
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
                    m.items().dim(0).unwrap_or(1) - 1,
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
