//! Protected writes (docs/SECURITY.md): with a write token, the routes that change what the
//! server serves (`POST /v1/items`, `POST /v1/reload`) answer 401 unless the request carries
//! `Authorization: Bearer <token>`; the read routes stay open. The token is compared in
//! constant time (`subtle`), never printed (its `Debug` is redacted), and read from a file
//! (or the environment) with a bound.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::atomic::read_bounded;
use crate::error::{Error, Result};

/// The largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;

/// The shortest token accepted (16 random bytes written as hex are 32 characters).
const MIN_TOKEN: usize = 16;

/// The secret a write request must present.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteToken(Vec<u8>);

impl std::fmt::Debug for WriteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteToken(<redacted>)")
    }
}

impl WriteToken {
    /// A token from its text (surrounding whitespace, such as a file's final newline, removed):
    /// at least 16 characters, printable ASCII without spaces (it travels in a header);
    /// `origin` names where it came from in the error.
    pub fn new(text: &str, origin: &str) -> Result<WriteToken> {
        let t = text.trim();
        if t.len() < MIN_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Input(format!(
                "{origin}: a write token is at least {MIN_TOKEN} printable ASCII characters \
                 without spaces (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(WriteToken(t.as_bytes().to_vec()))
    }

    /// The token in file `path` (at most 4 KiB).
    pub fn from_file(path: &Path) -> Result<WriteToken> {
        let text = read_bounded(path, MAX_TOKEN_FILE)?;
        WriteToken::new(&text, &path.display().to_string())
    }

    /// Whether `header` (an `Authorization` value) is `Bearer <this token>`, compared in
    /// constant time over the token's bytes.
    pub fn admits(&self, header: Option<&HeaderValue>) -> bool {
        let Some(presented) = header.and_then(|h| h.as_bytes().strip_prefix(b"Bearer ")) else {
            return false;
        };
        // `ct_eq` on slices of different lengths is false without looking at the bytes: the
        // token's length is the only thing a timing could tell
        bool::from(presented.ct_eq(&self.0))
    }
}

/// Refuse to serve write routes without a token on an address other hosts can reach, unless
/// the operator said so (`allow_unauthenticated`).
pub fn check_exposure(
    ip: IpAddr,
    token: Option<&WriteToken>,
    allow_unauthenticated: bool,
) -> Result<()> {
    if token.is_some() || ip.is_loopback() || allow_unauthenticated {
        return Ok(());
    }
    Err(Error::Input(format!(
        "--addr {ip} is reachable from other hosts: give --token-file FILE (or IISAN_SERVE_TOKEN) \
         so that POST /v1/items and /v1/reload need it, or --allow-unauthenticated-writes"
    )))
}

/// The middleware of the write routes: 401 with `WWW-Authenticate: Bearer` unless the request
/// presents the server's token (every request passes when the server has none).
pub async fn require_token(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match &s.opts.write_token {
        Some(t) if !t.admits(req.headers().get(header::AUTHORIZATION)) => {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this route changes the served model: send Authorization: Bearer <token>",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_admitted_and_it_is_never_printed() {
        let t = WriteToken::new("0123456789abcdef-secret\n", "test").unwrap();
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(t.admits(Some(&h("Bearer 0123456789abcdef-secret"))));
        for wrong in [
            "Bearer 0123456789abcdef-secreT",
            "Bearer 0123456789abcdef-secret2",
            "Bearer 0123456789abcdef",
            "bearer 0123456789abcdef-secret",
            "Basic 0123456789abcdef-secret",
            "0123456789abcdef-secret",
            "",
        ] {
            assert!(!t.admits(Some(&h(wrong))), "{wrong:?}");
        }
        assert!(!t.admits(None));
        assert_eq!(format!("{t:?}"), "WriteToken(<redacted>)");
        // short, spaced or non-ASCII tokens are refused, naming their origin
        for bad in [
            "short",
            "0123456789 abcdef-secret",
            "0123456789abcdéf-secret",
        ] {
            let e = WriteToken::new(bad, "token.txt").unwrap_err().to_string();
            assert!(e.contains("token.txt"), "{e}");
        }
    }

    #[test]
    fn write_routes_without_a_token_stay_on_loopback_unless_allowed() {
        let t = WriteToken::new("0123456789abcdef-secret", "test").unwrap();
        let (lo, v6lo, any) = (
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
        );
        assert!(check_exposure(lo, None, false).is_ok());
        assert!(check_exposure(v6lo, None, false).is_ok());
        assert!(check_exposure(any, Some(&t), false).is_ok());
        assert!(check_exposure(any, None, true).is_ok());
        let e = check_exposure(any, None, false).unwrap_err().to_string();
        assert!(e.contains("--token-file") && e.contains("0.0.0.0"), "{e}");
    }
}
