//! The relay's HTTP surface: routes, shared state and handlers.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/polls/{id}/votes` | forwarded; the node's `{receipt, status}` as it came, once the receipt is checked against the answering node's key (else 502 `untrusted_receipt`) |
//! | POST | `/v1/polls/{id}/votes/batch` | forwarded; the node's results as they came, every receipt checked the same way |
//! | GET | `/v1/nodes` | `{"nodes":[{"key","pinned"}]}`: the keys of the nodes behind the relay, the only ones whose receipts it passes on |
//! | GET | `/v1/polls/{id}`, `/v1/polls/{id}/tally` | forwarded |
//! | GET | `/v1/polls/{id}/entries/{hash}` | forwarded; the receipt checked like a vote's |
//! | GET | `/v1/polls/{id}/live` | WebSocket: live counts |
//! | GET | `/v1/polls/{id}/events` | Server-Sent Events: live counts, resumable with `Last-Event-ID` |
//! | POST | `/v1/polls/{id}/challenge` | a proof-of-work challenge |
//! | POST | `/v1/polls/{id}/credential` | `{voter, nonce, solution}` → a registrar-signed credential |
//! | GET | `/healthz`, `/readyz` | liveness; readiness (some node is up) |
//! | GET | `/metrics` | Prometheus metrics |
//! | GET | anything else | the web app (`--web-dir`), or 404 |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State,
};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crdt::{Credential, Eligibility, EntryHash, Poll, PollId, PublicKey, SecretKey, Vote};
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::limit::Limits;
use crate::live::{Hub, Subscription};
use crate::metrics::{HttpLabels, Metrics};
use crate::polls::{parse_poll_id, Polls};
use crate::pow::Pow;
use crate::upstream::{Reply, Upstreams};

/// Bytes a browser may send in one WebSocket message (it needs to send none).
const WS_MAX_MESSAGE: usize = 4 * 1024;
/// Small WebSocket buffers keep an idle connection cheap; messages are small.
const WS_READ_BUFFER: usize = 4 * 1024;
const WS_WRITE_BUFFER: usize = 0;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) polls: Polls,
    pub(crate) hub: Arc<Hub>,
    pub(crate) limits: Limits,
    pub(crate) pow: Pow,
    pub(crate) registrar: Option<SecretKey>,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) heartbeat: Duration,
    /// Flips to true at shutdown: live streams end.
    pub(crate) closing: watch::Receiver<bool>,
    pub(crate) metrics: Arc<Metrics>,
}

pub(crate) fn router(state: AppState, web: Option<Router>) -> Router {
    let limit = state.0.body_limit;
    let metrics = state.0.metrics.clone();
    let live = Router::new()
        .route("/v1/polls/{id}/live", get(live_ws))
        .route("/v1/polls/{id}/events", get(live_sse));
    let calls = Router::new()
        .route("/v1/polls/{id}", get(forward_get))
        .route("/v1/polls/{id}/tally", get(forward_get))
        .route("/v1/polls/{id}/entries/{hash}", get(forward_entry))
        .route("/v1/polls/{id}/votes", post(submit_vote))
        .route("/v1/polls/{id}/votes/batch", post(submit_batch))
        .route("/v1/polls/{id}/challenge", post(challenge))
        .route("/v1/polls/{id}/credential", post(credential))
        .route("/v1/nodes", get(nodes))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn_with_state(state.clone(), deadline));

    let api = live
        .merge(calls)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), per_ip))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state);
    let app = match web {
        Some(web) => api.fallback_service(web),
        None => api.fallback(crate::web::not_found),
    };
    app.layer(middleware::from_fn_with_state(metrics, count))
}

/// Counts every answer by route and status.
async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("web", |p| p.as_str())
        .to_string();
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let text = state
        .0
        .metrics
        .encode(state.0.hub.watchers(), state.0.upstreams.healthy_count());
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path",
    )
}

/// Per-IP rate limit on every API request.
async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(ip) = ip {
        if let Err(refused) = state.0.limits.check_ip(ip) {
            return refused.into_response();
        }
    }
    next.run(req).await
}

/// The whole request, body and forwarding included, within the request timeout.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.0.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("request not completed within {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.0.upstreams.any_healthy() {
        return "ready".into_response();
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "no node is reachable",
    )
    .into_response()
}

/// A JSON request body: the right content type, within the body limit.
/// Kept as bytes: what reaches a node is what the browser sent.
struct JsonBytes(Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if content_type != "application/json" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("content-type must be application/json, found {content_type:?}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let message = format!(
                    "request body exceeds the limit of {} bytes",
                    state.0.body_limit
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
        Ok(JsonBytes(bytes))
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(e.to_string()))
}

/// The node's reply, status, content type and body, unchanged.
fn pass_on(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    if let Some(content_type) = reply.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

async fn forward_get(
    State(state): State<AppState>,
    Path(params): Path<Vec<String>>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = params.first().map(String::as_str).unwrap_or("");
    parse_poll_id(id)?;
    let path = req.uri().path().to_string();
    let reply = state.0.upstreams.forward(Method::GET, &path, None).await?;
    Ok(pass_on(reply))
}

/// "Does a node hold my entry?": the node's receipt, checked like a vote's.
async fn forward_entry(
    State(state): State<AppState>,
    Path((id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let poll = parse_poll_id(&id)?;
    let entry: EntryHash = hash.parse().map_err(|_| {
        ApiError::invalid_path(format!("entry hash {hash:?} is not 32 bytes of hex"))
    })?;
    let path = format!("/v1/polls/{poll}/entries/{entry}");
    let reply = state.0.upstreams.forward(Method::GET, &path, None).await?;
    if reply.status.is_success() {
        vouch(&state, &reply, |key| {
            crate::vouch::check_entry_reply(key, poll, entry, &reply.body)
        })
        .await?;
    }
    Ok(pass_on(reply))
}

async fn submit_vote(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let poll = parse_poll_id(&id)?;
    state.0.limits.check_poll(poll)?;
    // Parsed only to refuse garbage at the edge; the node judges the vote.
    let vote: Vote = parse(&body)?;
    if vote.body().poll != poll {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_poll",
            format!("vote is for poll {}, not {poll}", vote.body().poll),
        ));
    }

    let path = format!("/v1/polls/{poll}/votes");
    let reply = state
        .0
        .upstreams
        .forward(Method::POST, &path, Some(body))
        .await?;
    if reply.status.is_success() {
        vouch(&state, &reply, |key| {
            crate::vouch::check_vote_reply(key, &vote, &reply.body)
        })
        .await?;
    }
    Ok(pass_on(reply))
}

/// Passes on a node's receipts only if the key of the node that answered
/// signed them: otherwise 502 `untrusted_receipt` (the browser retries), a
/// warning and a count in `votemesh_relay_receipts_refused`.
async fn vouch(
    state: &AppState,
    reply: &Reply,
    check: impl FnOnce(&PublicKey) -> Result<(), String>,
) -> Result<(), ApiError> {
    let upstreams = &state.0.upstreams;
    let node = &upstreams.node(reply.node).url;
    let checked = match upstreams.key_of(reply.node).await {
        Some(key) => check(&key),
        None => Err("the node's key is not known (its GET /v1/node did not answer)".into()),
    };
    checked.map_err(|reason| {
        state.0.metrics.receipts_refused.inc();
        tracing::warn!(node = %node, %reason, "node receipt refused: not passed on");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "untrusted_receipt",
            format!("the node's answer is not passed on: {reason}"),
        )
    })
}

/// The keys of the nodes whose receipts this relay passes on.
async fn nodes(State(state): State<AppState>) -> Json<serde_json::Value> {
    let nodes: Vec<_> = state
        .0
        .upstreams
        .known_keys()
        .into_iter()
        .map(|(key, pinned)| json!({ "key": key, "pinned": pinned }))
        .collect();
    Json(json!({ "nodes": nodes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchShape<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    votes: Vec<&'a RawValue>,
}

async fn submit_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let poll = parse_poll_id(&id)?;
    state.0.limits.check_poll(poll)?;
    serde_json::from_slice::<BatchShape<'_>>(&body)
        .map_err(|e| ApiError::invalid_json(e.to_string()))?;

    let path = format!("/v1/polls/{poll}/votes/batch");
    let reply = state
        .0
        .upstreams
        .forward(Method::POST, &path, Some(body))
        .await?;
    if reply.status.is_success() {
        vouch(&state, &reply, |key| {
            crate::vouch::check_batch_reply(key, &reply.body)
        })
        .await?;
    }
    Ok(pass_on(reply))
}

/// The registrar key the relay holds for this poll, or why it issues nothing.
fn registrar_for<'a>(state: &'a AppState, poll: &Poll) -> Result<&'a SecretKey, ApiError> {
    let not_here =
        |why: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_issued_here", why);
    let Eligibility::Credential { registrar } = &poll.draft.eligibility else {
        return Err(not_here(format!("poll {} needs no credential", poll.id)));
    };
    match &state.0.registrar {
        Some(key) if key.public() == *registrar => Ok(key),
        _ => Err(not_here(format!(
            "this relay does not hold registrar {registrar} of poll {}",
            poll.id
        ))),
    }
}

async fn challenge(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_poll_id(&id)?;
    state.0.limits.check_poll(id)?;
    let poll = state.0.polls.get(&state.0.upstreams, id).await?;
    registrar_for(&state, &poll)?;

    let issued = state.0.pow.challenge(id)?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialRequest {
    voter: PublicKey,
    nonce: String,
    solution: String,
}

async fn credential(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let id = parse_poll_id(&id)?;
    state.0.limits.check_poll(id)?;
    let request: CredentialRequest = parse(&body)?;
    let poll = state.0.polls.get(&state.0.upstreams, id).await?;
    let registrar = registrar_for(&state, &poll)?;

    state
        .0
        .pow
        .redeem(id, &request.nonce, &request.voter, &request.solution)?;
    let credential = Credential::issue(registrar, id, request.voter);
    tracing::debug!(poll = %id.short(), voter = %request.voter.short(), "credential issued");
    Ok(Json(json!({ "credential": credential })).into_response())
}

/// Resolves the poll of a live route: 400 for a bad id, 404 if no node holds it.
async fn live_poll(state: &AppState, id: &str) -> Result<PollId, ApiError> {
    let id = parse_poll_id(id)?;
    state.0.polls.get(&state.0.upstreams, id).await?;
    Ok(id)
}

async fn live_sse(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let poll = live_poll(&state, &id).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());

    let subscription = Subscription::new(state.0.hub.subscribe(poll), resume);
    let closing = state.0.closing.clone();
    let events = stream::unfold(
        (subscription, closing),
        |(mut sub, mut closing)| async move {
            let snapshot = tokio::select! {
                snapshot = sub.next() => snapshot?,
                () = closed(&mut closing) => return None,
            };
            let event = Event::default()
                .id(snapshot.version.to_string())
                .data(snapshot.text.as_str());
            Some((Ok::<_, Infallible>(event), (sub, closing)))
        },
    );
    let heartbeat = KeepAlive::new()
        .interval(state.0.heartbeat)
        .text("heartbeat");
    Ok(Sse::new(events).keep_alive(heartbeat).into_response())
}

async fn live_ws(
    State(state): State<AppState>,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let poll = live_poll(&state, &id).await?;
    let subscription = Subscription::new(state.0.hub.subscribe(poll), None);
    let heartbeat = state.0.heartbeat;
    let closing = state.0.closing.clone();
    Ok(upgrade
        .max_message_size(WS_MAX_MESSAGE)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .on_upgrade(move |socket| watch_ws(socket, subscription, heartbeat, closing)))
}

/// Sends snapshots until the browser goes away; pings when idle. Whatever
/// the browser sends is read (pongs, close) and otherwise ignored.
async fn watch_ws(
    mut socket: WebSocket,
    mut subscription: Subscription,
    heartbeat: Duration,
    mut closing: watch::Receiver<bool>,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            snapshot = subscription.next() => {
                let Some(snapshot) = snapshot else { break };
                if socket.send(Message::Text(snapshot.text.clone())).await.is_err() {
                    break;
                }
                ping.reset();
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            () = closed(&mut closing) => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

/// Resolves once the relay is shutting down; never if the flag's sender is gone.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard of `borrow_and_update` is dropped before any await.
    while !*closing.borrow_and_update() {
        if closing.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
