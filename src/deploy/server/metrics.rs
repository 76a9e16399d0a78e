//! `GET /metrics`: Prometheus text exposition of requests by route and status, a latency
//! histogram by route, requests in flight, the catalogue size and the items ranked by a scan
//! because no ANN index holds them yet (the `prometheus` crate).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use std::sync::Arc;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    /// Items in the served catalogue.
    pub items: IntGauge,
    /// Items scanned at every query: all of them without an ANN index, else those added since
    /// it was built (time to `iisan index compact` when this grows).
    pub scanned: IntGauge,
}

impl Metrics {
    /// Fresh counters, registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "iisan_requests_total",
                "Requests answered, by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let buckets = vec![
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "iisan_request_duration_seconds",
                "Time from request to response, by route",
            )
            .buckets(buckets),
            &["route"],
        )
        .expect("valid metric");
        let in_flight =
            IntGauge::new("iisan_requests_in_flight", "Requests being answered").expect("valid");
        let items =
            IntGauge::new("iisan_catalogue_items", "Items the server ranks").expect("valid");
        let scanned = IntGauge::new(
            "iisan_catalogue_scanned_items",
            "Items scored exactly at every query (not in the ANN index)",
        )
        .expect("valid");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(items.clone()),
            Box::new(scanned.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            items,
            scanned,
        }
    }

    /// Set the catalogue's gauges to `model`'s.
    pub fn show(&self, model: &crate::model::ServedModel) {
        let cat = model.catalogue();
        let indexed = cat.ann().map_or(0, |a| a.items());
        self.items.set(cat.num_items() as i64);
        self.scanned.set((cat.num_items() - indexed) as i64);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware: count and time every request under its route pattern (unknown paths as
/// `other`).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    m.in_flight.inc();
    let t0 = Instant::now();
    let resp = next.run(req).await;
    m.in_flight.dec();
    m.latency
        .with_label_values(&[route.as_str()])
        .observe(t0.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[route.as_str(), resp.status().as_str()])
        .inc();
    resp
}
