//! API errors and the ONE place they become HTTP statuses and JSON bodies.

use std::convert::Infallible;

use serde::Serialize;
use usher_core::model::ModelError;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use crate::store::StoreError;

/// Largest request body accepted (bigger gets 413).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Everything an admin request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { field: String, message: String },
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong token: send `Authorization: Bearer <token>` (the token is in <data_dir>/admin.token)")]
    Unauthorized,
    /// Signed in, but the request may not go through (CSRF, Origin).
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON answer: `{"error": "...", "field": "..."}`.
    pub fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            tracing::error!("admin API: {e}");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => Some(field.clone()),
            _ => None,
        };
        json_error(status, self.to_string(), field)
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

fn json_error(status: StatusCode, error: String, field: Option<String>) -> Response {
    warp::reply::with_status(warp::reply::json(&ErrorBody { error, field }), status).into_response()
}

/// `405` for a method a known path does not take, with the `Allow` header
/// RFC 9110 requires, listing the methods it does take.
pub fn method_not_allowed(method: &str, path: &str, allow: &[&str]) -> Response {
    let allow = allow.join(", ");
    let mut r = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path} does not take {method}; it takes {allow}"),
        None,
    );
    if let Ok(v) = warp::http::HeaderValue::from_str(&allow) {
        r.headers_mut().insert(warp::http::header::ALLOW, v);
    }
    r
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Invalid { field, problem } => ApiError::BadRequest {
                message: format!("{field}: {problem}"),
                field,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, name } => ApiError::NotFound { kind, name },
            StoreError::Exists { .. } | StoreError::Conflict(_) => {
                ApiError::Conflict(e.to_string())
            }
            StoreError::Invalid { field, problem } => ApiError::BadRequest {
                message: format!("{field}: {problem}"),
                field,
            },
            StoreError::Sqlite(_) | StoreError::Schema { .. } | StoreError::Stopped => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

/// Turns a handler's result into an answer.
pub fn reply(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// Turns warp's own rejections (no route, wrong method, body too large) and
/// ours into JSON answers.
pub async fn recover(r: warp::Rejection) -> Result<Response, Infallible> {
    if let Some(e) = r.find::<ApiError>() {
        let e = match e {
            ApiError::Unauthorized => ApiError::Unauthorized,
            ApiError::Forbidden(why) => ApiError::Forbidden(why.clone()),
            other => ApiError::Internal(other.to_string()),
        };
        return Ok(e.into_response());
    }
    let (status, message) = if r.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route".to_string())
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "send a Content-Length header".to_string(),
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route".to_string(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("bad request: {r:?}"))
    };
    Ok(json_error(status, message, None))
}
