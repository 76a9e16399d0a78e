//! The server's error answers: a status and a JSON body `{"error": {"status": N, "message":
//! "..."}}`, whatever went wrong (a malformed body, an unknown id, a full server).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, one line.
    pub message: String,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed (not JSON, wrong fields, out-of-range values).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    /// Bad input the request carried (unknown ids, an item that cannot be embedded) is 422;
    /// duplicate item ids 409; anything else is the server's fault, 500.
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        let status = match &e {
            Error::DuplicateItems { .. } => StatusCode::CONFLICT,
            Error::UnknownItems { .. } | Error::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"status": self.status.as_u16(), "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
