//! Extractors that turn every client mistake into an [`ApiError`], so none
//! of axum's plain-text rejections reaches a client.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::error::ApiError;
use crate::state::PollSlot;

/// A JSON body: `Content-Type: application/json` (or `+json`), within the
/// body limit, and of the shape `T`.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_content_type(req.headers().get(header::CONTENT_TYPE))?;

        // A client that stops sending mid-body must not hold the request open.
        let reading = Bytes::from_request(req, state);
        let read = tokio::time::timeout(state.body_timeout(), reading).await;
        let read = read.map_err(|_| {
            let message = format!(
                "request body not received within {} s",
                state.body_timeout().as_secs()
            );
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message)
        })?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let message = format!(
                    "request body exceeds the limit of {} bytes",
                    state.body_limit()
                );
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    rejection.body_text().to_lowercase(),
                )
            }
        })?;

        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_json(json_message(&e)))
    }
}

/// serde_json's message, lowercase like every other message of the API.
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.strip_prefix("EOF") {
        Some(rest) => format!("end of input{rest}"),
        None => text,
    }
}

fn check_content_type(value: Option<&header::HeaderValue>) -> Result<(), ApiError> {
    let unsupported = |found: &str| {
        let message = format!("content-type must be application/json, found {found:?}");
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    };
    let Some(value) = value else {
        return Err(unsupported(""));
    };
    let text = value.to_str().map_err(|_| unsupported("<not ascii>"))?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if !json {
        return Err(unsupported(text));
    }
    Ok(())
}

/// Path parameters, with axum's rejection mapped to 400 `invalid_path`.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    rejection.body_text().to_lowercase(),
                )
            })
    }
}

/// The poll named by the path's `{id}`, resolved before the body is read, so
/// a request for an unknown poll gets `unknown_poll` whatever its body.
pub(crate) struct PollPath(pub(crate) Arc<PollSlot>);

impl FromRequestParts<AppState> for PollPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(id) = ApiPath::<String>::from_request_parts(parts, state).await?;
        state.slot(&id).map(PollPath)
    }
}

/// Parses a hex identifier from the path, naming the bad value.
pub(crate) fn parse_id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| {
        let message = format!("{what} {text:?} is not 32 bytes of hex");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message)
    })
}
