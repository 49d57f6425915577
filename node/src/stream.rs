//! `GET /v1/polls/{id}/tally/stream`: a poll's tally as Server-Sent Events.
//!
//! A subscriber gets the current tally at once, then one event whenever the
//! poll's set has grown, at most [`MIN_GAP`] apart: changes that land in
//! between are folded into the next event. Each event carries `id: <entries>`
//! and, as data, the JSON body of `GET /v1/polls/{id}/tally`.
//!
//! Every subscriber waits on the poll's one `watch` channel (fed by
//! `PollSlot::insert_admitted` once entries are durable), which holds only
//! the latest entry count: a slow subscriber skips to the latest tally, and the
//! node never queues events for it. A comment line every [`HEARTBEAT`] keeps
//! proxies from closing an idle stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::{self, AppState};
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::PollSlot;

/// The shortest time between two events of one stream: at most 10 a second.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(100);

/// How often an idle stream gets a comment line.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);

/// The handler: 404 `unknown_poll` before the stream starts, then events.
pub(crate) async fn tally_stream(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let slot = state.slot(&id)?;
    // Subscribed before the first tally is read: no growth can slip between.
    let changes = slot.changes();
    let events = events(state, id, slot, changes);
    let heartbeat = KeepAlive::new().interval(HEARTBEAT).text("heartbeat");
    Ok(Sse::new(events).keep_alive(heartbeat).into_response())
}

/// Where one subscriber's stream stands.
struct Cursor {
    state: AppState,
    id: String,
    /// Holds the poll (and so its channel) alive for the stream's life.
    _slot: Arc<PollSlot>,
    changes: watch::Receiver<usize>,
    /// When the last event went out and its entry count; `None` before the first.
    sent: Option<(Instant, u64)>,
}

fn events(
    state: AppState,
    id: String,
    slot: Arc<PollSlot>,
    changes: watch::Receiver<usize>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        state,
        id,
        _slot: slot,
        changes,
        sent: None,
    };
    stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(event), cursor))
    })
}

impl Cursor {
    /// The next event: at once for the first, otherwise after the set grows
    /// and [`MIN_GAP`] has passed since the last. `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some((sent_at, _)) = self.sent {
                self.changes.changed().await.ok()?;
                tokio::time::sleep_until(sent_at + MIN_GAP).await;
            }

            // Marks everything up to now as seen: the tally read next covers it.
            self.changes.borrow_and_update();
            let tally = match api::tally(State(self.state.clone()), ApiPath(self.id.clone())).await
            {
                Ok(axum::Json(tally)) => tally,
                Err(e) => {
                    tracing::warn!(error = %e.message, "tally stream ended: the tally failed");
                    return None;
                }
            };

            // A tally read late may already cover the next change: send it once.
            let entries = tally["entries"].as_u64().unwrap_or(0);
            if self.sent.is_some_and(|(_, last)| last == entries) {
                continue;
            }
            self.sent = Some((Instant::now(), entries));
            let event = Event::default()
                .id(entries.to_string())
                .data(tally.to_string());
            return Some(event);
        }
    }
}
