//! The HTTP API: router, shared state and handlers.
//!
//! Every response is JSON except `/healthz`, `/readyz` (text), `/metrics`
//! (Prometheus text) and exports (NDJSON). Every error is
//! `{"error":{"code":..,"message":..}}`: see [`ApiError`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crdt::{
    admit_batch, EntryHash, Poll, PollId, PublicKey, Receipt, Rejection, SecretKey, SignedTally,
    Vote,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::commit::{Committer, Durable, Status};
use crate::error::{ApiError, ErrorBody};
use crate::export;
use crate::extract::{json_message, parse_id, ApiPath, JsonBody, PollPath};
use crate::metrics::{HttpLabels, Metrics};
use crate::receipts::Receipts;
use crate::state::{PollSlot, Polls};
use crate::store::Store;

/// What a POSTed poll may contain: the fields of its JSON form.
const POLL_FIELDS: [&str; 9] = [
    "id",
    "organizer",
    "created_at",
    "opens_at",
    "closes_at",
    "title",
    "options",
    "eligibility",
    "signature",
];

/// Seconds a client refused for `export_busy` is asked to wait.
const EXPORT_RETRY_AFTER_SECS: u64 = 5;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) key: Arc<SecretKey>,
    pub(crate) node: PublicKey,
    pub(crate) polls: Arc<Polls>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) committer: Committer,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) max_batch: usize,
    /// One permit per export allowed to stream at once.
    pub(crate) exports: Arc<Semaphore>,
}

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.0.body_limit
    }

    pub(crate) fn body_timeout(&self) -> Duration {
        self.0.body_timeout
    }

    pub(crate) fn slot(&self, id: &str) -> Result<Arc<PollSlot>, ApiError> {
        let id: PollId = parse_id("poll id", id)?;
        self.0
            .polls
            .get(&id)
            .ok_or_else(|| ApiError::unknown_poll(&id))
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let metrics = state.0.metrics.clone();
    let limit = state.0.body_limit;
    Router::new()
        .route("/v1/polls", post(create_poll).get(list_polls))
        .route("/v1/polls/{id}", get(get_poll))
        .route("/v1/polls/{id}/votes", post(submit_vote))
        .route("/v1/polls/{id}/votes/batch", post(submit_batch))
        .route("/v1/polls/{id}/entries/{hash}", get(get_entry))
        .route("/v1/polls/{id}/tally", get(tally))
        .route(
            "/v1/polls/{id}/tally/stream",
            get(crate::stream::tally_stream),
        )
        .route("/v1/polls/{id}/export", get(export))
        .route("/v1/node", get(node_info))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(metrics, track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts requests by route and status, inside a span naming the route.
async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().to_string();
    let span = tracing::debug_span!("request", %method, %route);

    let response = next.run(req).instrument(span).await;

    // Client mistakes are the client's to fix: debug, never error.
    let status = response.status();
    if status.is_client_error() {
        tracing::debug!(%method, %route, status = status.as_u16(), "request refused");
    }
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path",
    )
}

async fn node_info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "node": state.0.node, "version": env!("CARGO_PKG_VERSION") }))
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.0.committer.is_running() {
        return "ready".into_response();
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "the committer is not running",
    )
    .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.0.metrics.encode(),
    )
        .into_response()
}

async fn create_poll(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    check_poll_fields(&body)?;
    let poll = Poll::from_json(&body).map_err(|e| match e {
        crdt::PollJsonError::Json(message) => ApiError::invalid_json(message),
        crdt::PollJsonError::IdMismatch { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "poll_id_mismatch",
            e.to_string(),
        ),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_poll",
            other.to_string(),
        ),
    })?;
    poll.verify().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_poll_signature",
            e.to_string(),
        )
    })?;

    let json = Json(serde_json::to_value(&poll).unwrap_or(Value::Null));
    if state.0.polls.get(&poll.id).is_some() {
        return Ok((StatusCode::OK, json).into_response());
    }
    let id = poll.id;
    let new = state.0.committer.poll(poll).await?;
    if new {
        tracing::info!(poll = %id.short(), "poll created");
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json).into_response())
}

/// Refuses fields a poll does not have, as votes do: `Poll::from_json`
/// flattens the draft, which would drop them silently.
fn check_poll_fields(body: &Value) -> Result<(), ApiError> {
    let Some(object) = body.as_object() else {
        return Ok(());
    };
    match object.keys().find(|k| !POLL_FIELDS.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::invalid_json(format!(
            "unknown field `{unknown}`, expected one of {}",
            POLL_FIELDS.map(|f| format!("`{f}`")).join(", ")
        ))),
        None => Ok(()),
    }
}

async fn list_polls(State(state): State<AppState>) -> Json<Value> {
    let polls: Vec<Value> = state
        .0
        .polls
        .list()
        .iter()
        .map(|p| json!({ "id": p.id, "title": p.draft.title }))
        .collect();
    Json(Value::Array(polls))
}

async fn get_poll(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let slot = state.slot(&id)?;
    Ok(Json(
        serde_json::to_value(&*slot.poll).unwrap_or(Value::Null),
    ))
}

async fn submit_vote(
    State(state): State<AppState>,
    PollPath(slot): PollPath,
    JsonBody(vote): JsonBody<Vote>,
) -> Result<Json<Stored>, ApiError> {
    if vote.body().poll != slot.poll.id {
        let rejection = Rejection::WrongPoll {
            expected: slot.poll.id,
            found: vote.body().poll,
        };
        state.0.metrics.votes_received.inc();
        state.0.metrics.rejected(rejection.code());
        return Err(ApiError::rejected(&rejection));
    }

    let mut results = admit_and_store(&state, slot, vec![vote]).await?;
    let stored = results
        .pop()
        .unwrap_or_else(|| Err(ApiError::invalid_json("no vote")))?;
    Ok(Json(stored))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    /// Kept as raw text: each item is parsed once, and fails alone.
    votes: Vec<Box<RawValue>>,
}

/// The answer for one vote: `{receipt, status}`.
#[derive(Serialize)]
struct Stored {
    receipt: Receipt,
    status: &'static str,
}

/// One item of a batch answer: `{receipt, status}` or `{error}`.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem<'a> {
    Stored(&'a Stored),
    Failed(ErrorBody<'a>),
}

#[derive(Serialize)]
struct BatchReply<'a> {
    results: Vec<BatchItem<'a>>,
}

async fn submit_batch(
    State(state): State<AppState>,
    PollPath(slot): PollPath,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Response, ApiError> {
    if batch.votes.len() > state.0.max_batch {
        let message = format!(
            "batch of {} votes exceeds the limit of {}",
            batch.votes.len(),
            state.0.max_batch
        );
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            message,
        ));
    }

    // A malformed item fails alone; the others go on.
    let mut votes = Vec::with_capacity(batch.votes.len());
    let mut malformed = Vec::with_capacity(batch.votes.len());
    for (i, raw) in batch.votes.iter().enumerate() {
        match serde_json::from_str::<Vote>(raw.get()) {
            Ok(vote) => {
                votes.push(vote);
                malformed.push(None);
            }
            Err(e) => {
                let message = format!("votes[{i}]: {}", item_message(&e));
                malformed.push(Some(ApiError::invalid_json(message)));
            }
        }
    }
    drop(batch);
    let mut stored = admit_and_store(&state, slot, votes).await?.into_iter();

    let outcomes: Vec<Result<Stored, ApiError>> = malformed
        .into_iter()
        .map(|malformed| match malformed {
            Some(error) => Err(error),
            None => stored
                .next()
                .unwrap_or_else(|| Err(ApiError::invalid_json("lost"))),
        })
        .collect();
    let results = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(stored) => BatchItem::Stored(stored),
            Err(error) => BatchItem::Failed(error.body()),
        })
        .collect();
    Ok(Json(BatchReply { results }).into_response())
}

/// serde_json's message for one batch item, without the position inside the
/// item (the index names the item).
fn item_message(error: &serde_json::Error) -> String {
    let text = json_message(error);
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(bare) => bare.to_string(),
        None => text,
    }
}

enum Verdict {
    /// Already in the replica (so durable), with the receipt it got first.
    Held(Receipt),
    Admitted,
    Rejected(Rejection),
}

type ItemResult = Result<Stored, ApiError>;

/// Admission, group commit and receipts for votes of one poll. One result
/// per vote, in order. `Err` only when the store fails.
async fn admit_and_store(
    state: &AppState,
    slot: Arc<PollSlot>,
    votes: Vec<Vote>,
) -> Result<Vec<ItemResult>, ApiError> {
    let metrics = &state.0.metrics;
    metrics.votes_received.inc_by(votes.len() as u64);
    let poll = slot.poll.id;

    // Held entries skip verification; the rest are admitted in one batch (CPU heavy).
    let store = state.0.store.clone();
    let key = state.0.key.clone();
    let (admitted, verdicts) = blocking(move || judge(&*store, &key, &slot, votes)).await??;

    metrics.votes_accepted.inc_by(admitted.len() as u64);
    // The committer signs one statement per group and hands each vote its receipt.
    let mut durable = if admitted.is_empty() {
        Vec::new().into_iter()
    } else {
        state.0.committer.votes(poll, admitted).await?.into_iter()
    };

    let mut outcomes = Vec::with_capacity(verdicts.len());
    for verdict in verdicts {
        let outcome = match verdict {
            Verdict::Held(receipt) => Ok((receipt, Status::Duplicate)),
            Verdict::Admitted => match durable.next() {
                Some(Durable {
                    receipt: Some(receipt),
                    status,
                }) => Ok((receipt, status)),
                _ => Err(ApiError::storage(&crate::error::CommitError::Stopped)),
            },
            Verdict::Rejected(rejection) => {
                metrics.rejected(rejection.code());
                tracing::debug!(poll = %poll.short(), code = rejection.code(), "vote rejected");
                Err(ApiError::rejected(&rejection))
            }
        };
        if matches!(outcome, Ok((_, Status::Duplicate))) {
            metrics.votes_duplicate.inc();
        }
        outcomes.push(outcome.map(|(receipt, status)| Stored {
            receipt,
            status: status.as_str(),
        }));
    }
    Ok(outcomes)
}

fn storage_failed(poll: &PollId, e: crate::error::StoreError) -> ApiError {
    tracing::error!(poll = %poll.short(), error = %e, "reading a held entry failed");
    ApiError::storage(&crate::error::CommitError::Storage(Arc::new(e)))
}

/// Sorts votes into held, admitted and rejected. Returns the admitted votes
/// (moved, not copied) and one verdict per vote, in order.
fn judge(
    store: &dyn Store,
    key: &SecretKey,
    slot: &PollSlot,
    votes: Vec<Vote>,
) -> Result<(Vec<Vote>, Vec<Verdict>), ApiError> {
    let mut verdicts = Vec::with_capacity(votes.len());
    let mut fresh = Vec::with_capacity(votes.len());
    let mut receipts = Receipts::new(store, key, slot.poll.id);
    // One look under the replica's lock for the whole request.
    let in_replica: Vec<bool> = {
        let state = slot.view();
        votes.iter().map(|v| state.contains(&v.hash())).collect()
    };
    for (vote, in_replica) in votes.into_iter().zip(in_replica) {
        let held = if in_replica {
            receipts
                .lookup(&vote.hash())
                .map_err(|e| storage_failed(&slot.poll.id, e))?
        } else {
            None
        };
        match held {
            Some(receipt) => verdicts.push(Verdict::Held(receipt)),
            None => {
                verdicts.push(Verdict::Admitted);
                fresh.push(vote);
            }
        }
    }

    let checks = admit_batch(&slot.poll, &fresh);
    let mut checked = checks.into_iter().zip(fresh);
    let mut admitted = Vec::with_capacity(verdicts.len());
    for verdict in verdicts
        .iter_mut()
        .filter(|v| matches!(v, Verdict::Admitted))
    {
        match checked.next() {
            Some((Ok(()), vote)) => admitted.push(vote),
            Some((Err(rejection), _)) => *verdict = Verdict::Rejected(rejection),
            None => {}
        }
    }
    Ok((admitted, verdicts))
}

async fn get_entry(
    State(state): State<AppState>,
    ApiPath((id, hash)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let slot = state.slot(&id)?;
    let hash: EntryHash = parse_id("entry hash", &hash)?;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_entry",
            format!("entry {hash} is not held"),
        )
    };
    if !slot.contains(&hash) {
        return Err(unknown());
    }

    let store = state.0.store.clone();
    let key = state.0.key.clone();
    let poll = slot.poll.id;
    let receipt = blocking(move || Receipts::new(&*store, &key, poll).lookup(&hash))
        .await?
        .map_err(|e| storage_failed(&poll, e))?;
    let receipt = receipt.ok_or_else(unknown)?;
    Ok(Json(json!({ "receipt": receipt })))
}

pub(crate) async fn tally(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let slot = state.slot(&id)?;
    let poll = slot.poll.clone();
    let view = blocking(move || slot.tally_view()).await?;

    let counts = view.tally.counts.clone();
    let signed = SignedTally::sign(
        &state.0.key,
        poll.id,
        view.digest,
        view.tally.entries,
        counts,
        now_ms(),
    );
    Ok(Json(json!({
        "poll": poll.id,
        "options": poll.draft.options,
        "counts": view.tally.counts,
        "voters": view.tally.voters,
        "entries": view.tally.entries,
        "digest": view.digest,
        "equivocations": view.equivocations,
        "signed": signed,
    })))
}

async fn export(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let slot = state.slot(&id)?;
    let Ok(permit) = state.0.exports.clone().try_acquire_owned() else {
        state.0.metrics.exports_refused.inc();
        let message = "too many exports are running; retry later";
        let busy = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "export_busy", message);
        let retry = [(header::RETRY_AFTER, EXPORT_RETRY_AFTER_SECS.to_string())];
        return Ok((retry, busy).into_response());
    };
    let slot_held = export::Slot::new(permit, state.0.metrics.exports_active.clone());

    // A consistent snapshot: the attestation covers exactly the entries written.
    let poll = slot.poll.clone();
    let entries = match slot.cached_snapshot() {
        Some(entries) => entries,
        None => blocking(move || slot.snapshot()).await?,
    };
    tracing::debug!(poll = %poll.id.short(), entries = entries.len(), "export started");

    let lines = export::Lines::new(state.0.key.clone(), poll, entries, slot_held);
    let headers = [(header::CONTENT_TYPE, "application/x-ndjson")];
    Ok((headers, axum::body::Body::from_stream(lines)).into_response())
}

/// Runs CPU-heavy or blocking work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside the node",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_batch_item_gets_the_message_it_had_when_parsed_from_a_value() {
        let items = [
            r#"{"poll":5}"#,
            r#"null"#,
            r#"{"extra":1}"#,
            r#"{"poll":"ab"}"#,
            r#"[1,2]"#,
        ];

        for item in items {
            let raw = serde_json::from_str::<Vote>(item).unwrap_err();
            let value: Value = serde_json::from_str(item).unwrap();
            let from_value = serde_json::from_value::<Vote>(value).unwrap_err();

            assert_eq!(item_message(&raw), json_message(&from_value), "{item}");
        }
    }
}
