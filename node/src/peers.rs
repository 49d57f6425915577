//! The operator API of the replication mesh.
//!
//! - `GET /v1/peers`: every configured or connected peer, with its links and
//!   its last reconciliation round.
//! - `POST /v1/peers/{peer_id}/block` and `/unblock`, behind
//!   `Authorization: Bearer <admin_token>`: block disconnects the peer and
//!   refuses it until unblocked; unblock allows it again and, if it is a
//!   configured peer, dials it at once. Without an `admin_token` they answer
//!   403 `admin_disabled`; with a wrong or missing token 401 `unauthorized`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use libp2p::PeerId;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::mesh::Handle;

#[derive(Clone)]
struct Operator(Arc<Inner>);

struct Inner {
    mesh: Option<Handle>,
    token: Option<String>,
}

pub(crate) fn router(mesh: Option<Handle>, token: Option<String>) -> Router {
    let token = token.filter(|t| !t.is_empty());
    Router::new()
        .route("/v1/peers", get(list))
        .route("/v1/peers/{peer_id}/block", post(block))
        .route("/v1/peers/{peer_id}/unblock", post(unblock))
        .with_state(Operator(Arc::new(Inner { mesh, token })))
}

async fn list(State(op): State<Operator>) -> Json<Value> {
    let Some(mesh) = &op.0.mesh else {
        return Json(json!({ "mesh": false, "peers": [] }));
    };
    let table = mesh.table.lock().unwrap_or_else(|e| e.into_inner());
    let peers: Vec<Value> = table
        .peers
        .iter()
        .map(|(id, peer)| {
            json!({
                "peer_id": id.to_string(),
                "addresses": peer.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "configured": peer.configured,
                "connected": peer.connected(),
                "blocked": peer.blocked,
                "last_sync_ms": peer.last_sync_ms,
                "last_sync": peer.last,
                "lag": peer.lag,
            })
        })
        .collect();
    Json(json!({ "mesh": true, "peers": peers }))
}

async fn block(
    State(op): State<Operator>,
    headers: HeaderMap,
    Path(peer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (mesh, peer) = authorize(&op, &headers, &peer)?;
    let changed = mesh.block(peer).await.ok_or_else(stopped)?;
    Ok(Json(
        json!({ "peer_id": peer.to_string(), "blocked": true, "changed": changed }),
    ))
}

async fn unblock(
    State(op): State<Operator>,
    headers: HeaderMap,
    Path(peer): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (mesh, peer) = authorize(&op, &headers, &peer)?;
    let changed = mesh.unblock(peer).await.ok_or_else(stopped)?;
    Ok(Json(
        json!({ "peer_id": peer.to_string(), "blocked": false, "changed": changed }),
    ))
}

/// Checks the bearer token, that the mesh is on and the peer id parses.
fn authorize<'a>(
    op: &'a Operator,
    headers: &HeaderMap,
    peer: &str,
) -> Result<(&'a Handle, PeerId), ApiError> {
    let Some(token) = &op.0.token else {
        let message = "operator endpoints are disabled: set admin_token";
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            message,
        ));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(offered.as_bytes(), token.as_bytes()) {
        let message = "missing or wrong bearer token";
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            message,
        ));
    }

    let Some(mesh) = &op.0.mesh else {
        let message = "the replication mesh is off (p2p_listen is empty)";
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mesh_disabled",
            message,
        ));
    };
    let peer = peer.parse::<PeerId>().map_err(|e| {
        let message = format!("peer id `{peer}`: {e}");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_peer_id", message)
    })?;
    Ok((mesh, peer))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "mesh_stopped",
        "the replication mesh has stopped",
    )
}
