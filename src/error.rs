//! `ApiError`: every way a request can fail, turned into a status code and a
//! `{"error": "<sentence>"}` body in one place (`web::error_response`).

use std::fmt;

/// A failed request. The `String`s are the sentences clients see; the exact
/// wording of the Node server's errors is kept where one existed.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or a value is invalid.
    BadRequest(String),
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 401 with a Basic Auth challenge (dashboard and media).
    BasicAuthRequired,
    /// 403: a dashboard form without a valid CSRF token.
    Forbidden(String),
    /// 404: no such resource (the sentence says which).
    NotFound(String),
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 409: a request with the same Idempotency-Key is still being answered.
    Conflict(String),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 413: a file over MEDIA_MAX_BYTES (the sentence says so).
    FileTooLarge(String),
    /// 422: well-formed, but it contradicts an earlier request (an
    /// Idempotency-Key reused for another request).
    Unprocessable(String),
    /// 429: over the rate limit; retry after this many seconds.
    TooManyRequests { retry_after: u64 },
    /// 503: WhatsApp is not connected (or its backend is gone).
    Unavailable(String),
    /// 500: a send to WhatsApp failed; the sentence is safe to show.
    SendFailed(String),
    /// 500: a bug or an I/O failure; logged in full, shown as a generic sentence.
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized | ApiError::BasicAuthRequired => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Conflict(_) => 409,
            ApiError::PayloadTooLarge | ApiError::FileTooLarge(_) => 413,
            ApiError::Unprocessable(_) => 422,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Unavailable(_) => 503,
            ApiError::SendFailed(_) | ApiError::Internal(_) => 500,
        }
    }

    /// The sentence a client sees.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unprocessable(m)
            | ApiError::Unavailable(m)
            | ApiError::FileTooLarge(m)
            | ApiError::SendFailed(m) => m.clone(),
            ApiError::Unauthorized | ApiError::BasicAuthRequired => "Unauthorized".into(),
            ApiError::MethodNotAllowed => "Method not allowed".into(),
            ApiError::PayloadTooLarge => "Request body is too large (1 MiB at most; a file reply: its file up to MEDIA_MAX_BYTES)".into(),
            ApiError::TooManyRequests { .. } => "Too many requests, please try again later".into(),
            ApiError::Internal(_) => "Internal server error".into(),
        }
    }

    /// Shorthand for a 400.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal(detail) => write!(f, "internal error: {detail}"),
            other => write!(f, "{} {}", other.status(), other.public_message()),
        }
    }
}

impl std::error::Error for ApiError {}

/// An operation's failure as the JSON API answers it.
impl From<crate::ops::Error> for ApiError {
    fn from(e: crate::ops::Error) -> Self {
        use crate::ops::Error;
        match e {
            Error::Invalid(m) => ApiError::BadRequest(m),
            Error::TooLarge(m) => ApiError::FileTooLarge(m),
            Error::NotFound(m) => ApiError::NotFound(m),
            Error::Conflict(m) => ApiError::Conflict(m),
            Error::KeyReused(m) => ApiError::Unprocessable(m),
            Error::Unavailable(_) | Error::Backend { .. } => ApiError::Unavailable(e.message()),
            Error::SendFailed(m) => ApiError::SendFailed(m),
            Error::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(format!("i/o: {e}"))
    }
}
