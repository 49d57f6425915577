//! Poll definitions the relay has fetched from the nodes, kept while it runs.
//! A poll never changes once signed, so a fetched poll is never stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use crdt::{Poll, PollId};

use crate::error::ApiError;
use crate::upstream::Upstreams;

/// Most polls kept; past it the cache is cleared (they are re-fetched on use).
const MAX_POLLS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Polls {
    known: Mutex<HashMap<PollId, Arc<Poll>>>,
}

/// Parses the poll id of a path.
pub(crate) fn parse_poll_id(text: &str) -> Result<PollId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid_path(format!("poll id {text:?} is not 32 bytes of hex")))
}

impl Polls {
    /// The poll, from the cache or the nodes; 404 `unknown_poll` if no node holds it.
    pub(crate) async fn get(
        &self,
        upstreams: &Upstreams,
        id: PollId,
    ) -> Result<Arc<Poll>, ApiError> {
        if let Some(poll) = self.cached(&id) {
            return Ok(poll);
        }

        let reply = upstreams
            .forward(Method::GET, &format!("/v1/polls/{id}"), None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(ApiError::unknown_poll(&id));
        }
        if !reply.status.is_success() {
            return Err(ApiError::no_upstream(format!(
                "node answered {} for poll {id}",
                reply.status.as_u16()
            )));
        }

        // The relay trusts no node blindly: the organizer's signature and id must hold.
        let value: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| ApiError::no_upstream(format!("node sent a malformed poll: {e}")))?;
        let poll = Poll::from_json(&value)
            .ok()
            .filter(|p| p.id == id && p.verify().is_ok())
            .ok_or_else(|| ApiError::no_upstream(format!("node sent an invalid poll {id}")))?;
        let poll = Arc::new(poll);

        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_POLLS {
            known.clear();
        }
        known.insert(id, poll.clone());
        Ok(poll)
    }

    fn cached(&self, id: &PollId) -> Option<Arc<Poll>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(id).cloned()
    }
}
