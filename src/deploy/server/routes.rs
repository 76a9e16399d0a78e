//! The routes: `POST /v1/recommend`, `POST /v1/items`, `POST /v1/reload`, `GET /health`,
//! `GET /info`, `GET /metrics` (request and answer formats in docs/SERVING.md).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::requests::{decode_items, decode_recommend};
use super::responses::{
    Added, BatchRecommendations, Health, Info, PublicTower, Ranking, Recommendations, Reloaded,
};
use super::state::AppState;
use crate::scorer::Scorer;

type Shared = State<Arc<AppState>>;

/// `POST /v1/recommend`.
pub async fn recommend(
    State(s): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let req = decode_recommend(&bytes, s.opts.max_batch)?;
    let (batch, single) = (req.histories, req.single);
    let model = s.current();
    if req.k == 0 || req.k > model.num_items() {
        return Err(ApiError::bad_request(format!(
            "k = {}: must lie in 1..={}",
            req.k,
            model.num_items()
        )));
    }
    let mut rows = Vec::with_capacity(batch.len());
    for (i, h) in batch.iter().enumerate() {
        if h.is_empty() {
            return Err(ApiError::bad_request(format!("history {} is empty", i + 1)));
        }
        let keys: Vec<&str> = h.iter().map(String::as_str).collect();
        rows.push(
            model
                .rows(&keys)
                .map_err(|e| ApiError::from(if single { e } else { e.in_history(i + 1) }))?,
        );
    }
    let top = s
        .batcher
        .recommend(model.clone(), rows, req.k, req.exclude_history)
        .await?;
    if single {
        return Ok(Json(Recommendations::of(&model, &top[0])).into_response());
    }
    let results = top.iter().map(|t| Recommendations::of(&model, t)).collect();
    Ok(Json(BatchRecommendations { results }).into_response())
}

/// `POST /v1/items`: embed and add items; answers the catalogue size.
pub async fn add_items(
    State(s): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Added>, ApiError> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text()))?;
    let items = decode_items(&bytes, s.opts.max_batch)?;
    let n = items.len();
    let model = s.add_items(items).await?;
    Ok(Json(Added {
        added: n,
        generation: s.generation(),
        items: model.num_items(),
    }))
}

/// `POST /v1/reload`: re-read the run directory and swap the model in.
pub async fn reload(State(s): Shared) -> Result<Json<Reloaded>, ApiError> {
    let model = s.reload().await?;
    Ok(Json(Reloaded {
        generation: s.generation(),
        items: model.num_items(),
        reloaded: true,
    }))
}

/// `GET /health`.
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /info`: method, catalogue, dimensions, towers.
pub async fn info(State(s): Shared) -> Json<Info> {
    let m = s.current();
    let facts = s.facts();
    let run = s.run.file_name().unwrap_or(s.run.as_os_str());
    Json(Info {
        dim: m.catalogue().dim(),
        generation: s.generation(),
        items: m.num_items(),
        ranking: Ranking::of(m.catalogue()),
        max_len: m.max_len(),
        method: facts.method.clone(),
        run: run.to_string_lossy().into_owned(),
        towers: facts.towers.iter().map(PublicTower::from).collect(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(s): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// `POST /v1/items` and `/v1/reload` of a replica that follows a writer: 403.
pub async fn read_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "this server follows its run directory (--follow): add items through the writer",
    )
}

/// Unknown path: 404 as JSON.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// Known path, other method: 405 as JSON.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// Middleware on the `/v1` routes: admit at most `max_concurrent` requests at once, answer
/// 429 beyond.
pub async fn admit(State(s): Shared, req: Request, next: Next) -> Response {
    match s.limit.clone().try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "busy: {} requests in flight, retry later",
                s.opts.max_concurrent
            ),
        )
        .into_response(),
    }
}
