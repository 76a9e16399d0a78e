//! `iisan serve RUN [--addr 127.0.0.1:8080]`: the run over HTTP (docs/SERVING.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use iisan::deploy::server::{ServeOptions, run};
use iisan::error::Result;

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
}

/// `iisan serve`.
pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    let opts = ServeOptions {
        max_concurrent: a.max_concurrent.max(1),
        max_body: a.max_body,
        max_batch: a.max_batch.max(1),
        compute_threads: a.compute_threads.max(1),
        ..ServeOptions::default()
    };
    run(&a.run, a.addr, opts)
}
