//! Bounds on what requests may hold in memory and how long they may take (docs/SECURITY.md,
//! "Server"), as one middleware in front of every route:
//! - a declared `Content-Length` over `max_body` is answered 413 at once, before a byte of the
//!   body is read (axum's own limit counts bytes as they arrive, so it waits for them);
//! - the bodies in flight together hold at most `max_inflight_body` bytes: a request reserves
//!   its declared length (`max_body` when it sends chunks of unknown total) before it is read,
//!   and is answered 503 when the reservation does not fit, so a burst of maximum-size bodies
//!   cannot raise the server's memory beyond the bound;
//! - a request (reading its body, computing, answering) that takes longer than
//!   `request_timeout` is answered 408, which also ends a body uploaded too slowly.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// The bounds one request is held to, and the shared budget of body bytes in flight.
#[derive(Debug, Clone)]
pub struct BodyBounds {
    /// Largest body, bytes.
    pub max_body: usize,
    /// All bodies in flight together, bytes.
    pub max_inflight: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// The budget, in KiB.
    budget: Arc<Semaphore>,
}

impl BodyBounds {
    /// Bounds with a fresh budget of `max_inflight` bytes.
    pub fn new(max_body: usize, max_inflight: usize, request_timeout: Duration) -> BodyBounds {
        BodyBounds {
            max_body,
            max_inflight,
            request_timeout,
            budget: Arc::new(Semaphore::new(kib(max_inflight).max(1) as usize)),
        }
    }

    /// Body bytes in flight now (rounded up to KiB).
    pub fn in_flight(&self) -> usize {
        (kib(self.max_inflight).max(1) as usize - self.budget.available_permits()) << 10
    }
}

/// Bytes rounded up to whole KiB, as semaphore permits (saturating at u32's range).
fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).min(u32::MAX as usize) as u32
}

/// How many bytes the body of `req` may hold: its declared length, `max_body` when it is sent
/// in chunks, nothing when it has none.
fn declared(req: &Request, max_body: usize) -> Result<usize, ApiError> {
    if let Some(v) = req.headers().get(header::CONTENT_LENGTH) {
        let n: usize = (v.to_str().ok())
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::bad_request("the Content-Length header is not a number"))?;
        if n > max_body {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body declares {n} bytes; the limit is {max_body} bytes"),
            ));
        }
        return Ok(n);
    }
    Ok(if req.headers().contains_key(header::TRANSFER_ENCODING) {
        max_body
    } else {
        0
    })
}

/// `answer` with `Connection: close`: given before the request's body was read (or while it
/// was still arriving), the connection holds unread bytes, so it is not reused; without the
/// header a client could send its next request down a connection the server is closing.
fn closing(mut answer: Response) -> Response {
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// The middleware: refuse an oversized declared body, reserve the body's bytes in the budget,
/// and bound the request's time. Every refusal, and a 413 from the routes (a body sent in
/// chunks that outgrew the limit), closes the connection ([`closing`]).
pub async fn bound(State(b): State<BodyBounds>, req: Request, next: Next) -> Response {
    let bytes = match declared(&req, b.max_body) {
        Ok(n) => n,
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => return closing(e.into_response()),
        Err(e) => return e.into_response(),
    };
    let reserved = match bytes {
        0 => None,
        n => match b.budget.clone().try_acquire_many_owned(kib(n)) {
            Ok(permit) => Some(permit),
            Err(_) => {
                let msg = format!(
                    "busy: request bodies in flight hold the server's limit of {} MiB, retry later",
                    b.max_inflight >> 20
                );
                return closing(
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg).into_response(),
                );
            }
        },
    };
    let answer = match tokio::time::timeout(b.request_timeout, next.run(req)).await {
        Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => closing(r),
        Ok(r) => r,
        Err(_) => {
            let msg = format!(
                "the request took longer than {} s (the body arrived too slowly, or the server \
                 is overloaded)",
                b.request_timeout.as_secs_f64()
            );
            closing(ApiError::new(StatusCode::REQUEST_TIMEOUT, msg).into_response())
        }
    };
    drop(reserved);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/items");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    /// Declared lengths: at the limit it is reserved as sent, one byte over is 413 before any
    /// reading, chunked reserves the whole limit, no body reserves nothing, garbage is 400.
    #[test]
    fn declared_lengths_are_checked_before_reading() {
        assert_eq!(
            declared(&req(&[("content-length", "100")]), 100).unwrap(),
            100
        );
        let e = declared(&req(&[("content-length", "101")]), 100).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.message.contains("declares 101 bytes; the limit is 100"),
            "{}",
            e.message
        );
        let chunked = req(&[("transfer-encoding", "chunked")]);
        assert_eq!(declared(&chunked, 100).unwrap(), 100);
        assert_eq!(declared(&req(&[]), 100).unwrap(), 0);
        let e = declared(&req(&[("content-length", "lots")]), 100).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    /// The budget counts KiB rounded up: 2 MiB holds two 1 MiB bodies, not a third byte more.
    #[test]
    fn the_budget_holds_what_fits_and_no_more() {
        let b = BodyBounds::new(1 << 20, 2 << 20, Duration::from_secs(1));
        let one = b
            .budget
            .clone()
            .try_acquire_many_owned(kib(1 << 20))
            .unwrap();
        let two = b
            .budget
            .clone()
            .try_acquire_many_owned(kib(1 << 20))
            .unwrap();
        assert_eq!(b.in_flight(), 2 << 20);
        assert!(b.budget.clone().try_acquire_many_owned(kib(1)).is_err());
        drop((one, two));
        assert_eq!(b.in_flight(), 0);
    }
}
